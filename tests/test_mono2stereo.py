"""Mono2Stereo: energy preserved by construction, zero-init centred, visual panning, targets, file round trip."""
from __future__ import annotations

import pytest
import torch

from kf_core.codec.mel import MelSpectrogram
from kf_core.codec.mono2stereo import Mono2Stereo, load_mono2stereo, pan_targets, stereo_targets
from kf_core.config import CODEC_PRESETS
from kf_core.loading import CheckpointError, save_state_dict


def _randomise(model: torch.nn.Module, scale: float = 0.5) -> None:
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


@pytest.mark.parametrize("log", ["ln", "log10"])
def test_mean_of_channels_is_the_mono_mel(log):
    m = Mono2Stereo(n_mels=16, visual_dim=8, hidden=16, layers=2, log=log)
    _randomise(m)
    mel = torch.randn(3, 16, 40) * 3 - 4
    out = m(mel, torch.randn(3, 5, 8))
    assert out.shape == (3, 2, 16, 40)
    expand = (lambda x: x.double().exp()) if log == "ln" else (lambda x: 10 ** x.double())
    mean = (expand(out[:, 0]) + expand(out[:, 1])) / 2
    torch.testing.assert_close(mean, expand(mel), rtol=1e-5, atol=0)
    assert (out[:, 0] - out[:, 1]).abs().max() > 0.1  # random weights really pan


def test_untrained_module_gives_left_equals_right():
    m = Mono2Stereo(n_mels=16, hidden=16, layers=2)
    mel = torch.randn(2, 16, 12)
    out = m(mel)
    torch.testing.assert_close(out[:, 0], out[:, 1], atol=0, rtol=0)
    torch.testing.assert_close(out[:, 0], mel, atol=1e-6, rtol=0)
    torch.testing.assert_close(m.pan(mel), torch.full_like(mel, 0.5))


def test_visual_features_change_the_pan_over_time():
    m = Mono2Stereo(n_mels=8, visual_dim=4, hidden=8, layers=1)
    _randomise(m)
    mel = torch.zeros(1, 8, 32)
    left_then_right = torch.stack([torch.linspace(-2, 2, 6)] * 4, -1)[None]   # 1 Lv=6 Dv=4
    p_a = m.pan(mel, left_then_right)
    p_b = m.pan(mel, left_then_right.flip(1))
    assert p_a.shape == (1, 8, 32)
    assert (p_a - p_b).abs().max() > 1e-2
    # Audio-only modules ignore visual features instead of failing.
    torch.testing.assert_close(Mono2Stereo(8, hidden=8)(mel, left_then_right), Mono2Stereo(8, hidden=8)(mel))


def test_pan_targets_recover_a_known_pan():
    cfg = CODEC_PRESETS["16k"]
    front = MelSpectrogram(cfg)
    g = torch.Generator().manual_seed(0)
    src = 0.2 * torch.randn(2, 16 * cfg.hop, generator=g)
    gains = torch.tensor([[0.9], [0.3]])
    t = stereo_targets(src * gains, src * (1 - gains), front)
    assert t["mono"].shape == t["pan"].shape == (2, 80, 16) and t["stereo"].shape == (2, 2, 80, 16)
    loud = t["mono"] > -3   # where the signal is above the log floor
    torch.testing.assert_close(t["pan"][0][loud[0]], torch.full_like(t["pan"][0][loud[0]], 0.9), atol=1e-3, rtol=0)
    torch.testing.assert_close(t["pan"][1][loud[1]], torch.full_like(t["pan"][1][loud[1]], 0.3), atol=1e-3, rtol=0)
    # A perfect module (the true pan) reproduces the channel mels from the mono mix.
    m = Mono2Stereo(n_mels=80, hidden=8, log="log10")
    logits = torch.logit(t["pan"].clamp(1e-6, 1 - 1e-6))
    rebuilt = m.apply_pan(t["mono"], logits)
    torch.testing.assert_close(rebuilt[loud[:, None].expand_as(rebuilt)],
                               t["stereo"][loud[:, None].expand_as(rebuilt)], atol=1e-3, rtol=0)


def test_pan_targets_mix_in_linear_domain():
    left, right = torch.full((1, 2, 3), 0.0), torch.full((1, 2, 3), -20.0)
    mono, pan = pan_targets(left, right, "ln")
    torch.testing.assert_close(mono, torch.full_like(mono, torch.log(torch.tensor(0.5)).item()), atol=1e-6, rtol=0)
    assert (pan > 0.999).all()


def test_file_round_trip_and_wrong_file(tmp_path):
    m = Mono2Stereo(n_mels=16, visual_dim=8, hidden=16, layers=3, kernel_size=3, log="log10")
    _randomise(m)
    path = save_state_dict(m.state_dict(), tmp_path / "mono2stereo.safetensors")
    back = load_mono2stereo(path)
    assert back.cfg == m.cfg
    mel, vis = torch.randn(1, 16, 10), torch.randn(1, 4, 8)
    torch.testing.assert_close(back(mel, vis), m(mel, vis))
    bad = save_state_dict({"conv_pre.weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not a Mono2Stereo"):
        load_mono2stereo(bad)


def test_shape_errors():
    m = Mono2Stereo(n_mels=16, visual_dim=8, hidden=16)
    with pytest.raises(ValueError, match="log-mel"):
        m(torch.zeros(1, 15, 4))
    with pytest.raises(ValueError, match="visual"):
        m(torch.zeros(1, 16, 4), torch.zeros(1, 3, 7))
