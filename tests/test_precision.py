"""`--precision`: what `auto` picks, that bf16 runs every cast network, and the CLI flag."""
from __future__ import annotations

import pytest
import torch

from kf_core import precision
from kf_core.__main__ import main
from kf_core.components import load_components
from kf_core.pipeline import FoleyPipeline, decode_mel
from media import make_video
from tiny_model import write_random_tiny_folder


def test_auto_is_fp32_for_small_models_and_off_bf16_cpus(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert precision.pick_dtype("auto", "cpu", 3_300_000) == torch.float32          # kf-tiny stays exact
    assert precision.pick_dtype("auto", "cpu", 157_000_000) == torch.bfloat16       # MMAudio-S
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    assert precision.pick_dtype("auto", "cpu", 157_000_000) == torch.float32
    assert precision.pick_dtype("auto", "mps", 157_000_000) == torch.float32
    assert precision.pick_dtype("fp32", "cpu", 10**9) == torch.float32
    assert precision.pick_dtype("bf16", "cpu", 1) == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'int8'"):
        precision.pick_dtype("int8", "cpu", 1)


def test_bf16_casts_the_networks_and_stays_near_fp32(tmp_path):
    folder = write_random_tiny_folder(tmp_path / "model", vocoder=False)
    ref = FoleyPipeline(load_components(folder))
    half = FoleyPipeline(load_components(folder).cast(torch.bfloat16))
    c = half.components
    for m in (c.dit.model, c.text_encoder.encoder, c.visual_encoders.clip, c.visual_encoders.sync, c.codec.vae):
        assert next(m.parameters()).dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in c.codec.vocoder.parameters())  # the vocoder stays fp32
    video = make_video(tmp_path / "in.mp4", fps=24, seconds=1.0, width=64, height=48)
    kw = dict(prompt="a ball bounces", steps=3, seed=1, stereo=False, watermark=False)
    (a, _), (b, _) = ref.generate(video, **kw), half.generate(video, **kw)
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape and torch.isfinite(b).all()
    # what bf16 changes is the networks' output, the decoded mel (the fp32 vocoder then makes its own
    # phase, so waveforms are compared by nothing finer than that): a few percent, not the same bits
    mels = []
    for pipe in (ref, half):
        lat, _ = pipe._latents(video, kw["prompt"], "", None, 3, "euler", "uniform", None, 1, fps=None, shift=None,
                               batch_size=1, window=None, overlap=1.0, callback=None, check_cancel=None)
        mels.append(decode_mel(pipe.components.codec, lat).mel.float())
    rel = (mels[0] - mels[1]).norm() / mels[0].norm()
    assert 0 < rel < 0.1, rel


def test_cli_precision_flag(tmp_path, capsys):
    model = write_random_tiny_folder(tmp_path / "model", vocoder=False)
    src = make_video(tmp_path / "in.mp4", fps=24, seconds=1.0, width=64, height=48)
    args = ["generate", "--video", str(src), "--audio-out", str(tmp_path / "out.wav"), "--model", str(model),
            "--steps", "2", "--precision", "bf16"]
    assert main(args) == 0
    with pytest.raises(SystemExit) as err:
        main(args[:-1] + ["int8"])
    assert err.value.code == 2
    assert "invalid choice: 'int8'" in capsys.readouterr().err


def test_bench_e2e_times_every_stage_and_compares_precisions(tmp_path, capsys):
    model = write_random_tiny_folder(tmp_path / "model", vocoder=False)
    src = make_video(tmp_path / "in.mp4", fps=25, seconds=1.0, width=64, height=48)
    assert main(["bench", "e2e", "--model", str(model), "--video", str(src), "--steps", "2", "--repeats", "1",
                 "--precision", "fp32", "bf16"]) == 0
    out = capsys.readouterr().out
    from kf_core.eval.bench_e2e import STAGES
    for row in (*STAGES, "total", "real-time factor", "log-mel L1 vs first", "SI-SDR dB vs first"):
        assert f"\n{row} " in out, row
    assert "fp32 = float32, bf16 = bfloat16" in out and "1.00 s clip" in out


def test_fp16_keeps_the_text_encoder_in_fp32(tmp_path):
    c = load_components(write_random_tiny_folder(tmp_path / "model", vocoder=False)).cast(torch.float16)
    assert next(c.text_encoder.encoder.parameters()).dtype == torch.float32
    assert next(c.dit.model.parameters()).dtype == torch.float16


def test_bench_mmaudio_asks_for_a_checkout_before_any_work(tmp_path):
    from kf_core.__main__ import main
    with pytest.raises(SystemExit, match="git clone https://github.com/hkchengrex/MMAudio"):
        main(["bench", "mmaudio", "--mmaudio-src", str(tmp_path), "--work", str(tmp_path / "w")])
    assert not (tmp_path / "w").exists()  # nothing written before the check


def test_bench_mmaudio_draws_what_constructors_leave_unset():
    from kf_core.eval.bench_mmaudio import _fill_unset_

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = torch.nn.Linear(4, 4)
            torch.nn.init.zeros_(self.gate.weight)
            torch.nn.init.zeros_(self.gate.bias)
            self.kept = torch.nn.Parameter(torch.full((3,), 0.5))
            self.latent_mean = torch.nn.Parameter(torch.full((1, 1, 3), float("nan")), requires_grad=False)
            self.latent_std = torch.nn.Parameter(torch.full((1, 1, 3), float("nan")), requires_grad=False)

    net = Net()
    _fill_unset_(net, torch.Generator().manual_seed(0))
    assert net.gate.weight.abs().min() > 0 and net.gate.bias.abs().min() > 0   # zeros drawn
    assert torch.equal(net.kept, torch.full((3,), 0.5))                            # set values stay
    assert torch.isfinite(net.latent_mean).all() and (net.latent_std >= 1).all()
