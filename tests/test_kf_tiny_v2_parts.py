"""kf-tiny v2's new parts: the motion frontend of the sync encoder, sync-token placement in time,
sync-conditioned Mono2Stereo, the sync encoder's pan targets and the conditioned stereo trainer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kf_core.codec.mel import MelSpectrogram
from kf_core.codec.mono2stereo import Mono2Stereo, load_mono2stereo
from kf_core.config import CODEC_PRESETS, SeqConfig
from kf_core.encoders.seeded import seeded_init_
from kf_core.encoders.synchformer import (FRONTEND_KEY, SYNCHFORMER_PRESETS, Synchformer, motion_frames)
from kf_core.loading.state import read_state_dict, save_state_dict
from kf_core.model.dit import segment_aligned
from kf_core.model.sync import at_times, sync_slots

CFG = CODEC_PRESETS["44k"]


def _moving_square(t: int = 24, size: int = 32, seed: int = 0) -> torch.Tensor:
    """[1, T, 3, S, S] in [-1, 1]: a bright square moving right over a textured background."""
    g = torch.Generator().manual_seed(seed)
    bg = torch.rand(3, size, size, generator=g) * 0.4 - 0.6
    frames = bg.expand(t, -1, -1, -1).clone()
    for i in range(t):
        frames[i, :, 10:16, i:i + 6] = 0.9
    return frames[None]


def test_motion_frontend_ignores_global_light_and_sees_motion():
    x = _moving_square()
    m = motion_frames(x)
    assert m.shape == x.shape
    # a change of brightness and contrast of the whole picture (flicker, exposure) changes nothing
    lit = (x * 0.6 + 0.2).clamp(-1, 1)
    torch.testing.assert_close(motion_frames(lit), m, atol=0.02, rtol=0.05)
    # a static picture has no motion channels; the first frame's differences are zero
    still = x[:, :1].expand(-1, 8, -1, -1, -1)
    assert motion_frames(still)[:, :, 1:].abs().max() < 1e-6
    assert m[:, 0, 1:].abs().max() == 0
    # the moving square shows up in the first difference, where it moved
    assert m[0, 5, 1, 10:16].abs().sum() > 10 * m[0, 5, 1, :8].abs().sum()


def test_motion_frontend_travels_with_the_weights(tmp_path):
    model = seeded_init_(Synchformer(SYNCHFORMER_PRESETS["kf-tiny-motion"]), 0).eval()
    path = save_state_dict(model.state_dict(), tmp_path / "sync.safetensors")
    assert FRONTEND_KEY in read_state_dict(path)
    back = Synchformer.from_file(path)
    assert back.cfg == model.cfg and (back.cfg.frontend, back.cfg.resize) == ("motion", "squash")
    frames = _moving_square(t=24, size=64)
    with torch.no_grad():
        torch.testing.assert_close(back.encode_video(frames), model.encode_video(frames))
    # MMAudio-style encoders carry no frontend key and stay RGB + centre crop
    plain = Synchformer.tiny(0)
    assert FRONTEND_KEY not in plain.state_dict() and (plain.cfg.frontend, plain.cfg.resize) == ("rgb", "crop")


@pytest.mark.parametrize("duration", [2.0, 4.37, 8.0])
def test_sync_slots_at_latent_times_are_the_dits_align_layout(duration):
    seq = SeqConfig(duration)
    s = torch.randn(2, seq.sync_len, 5)
    centre = (torch.arange(seq.latent_len, dtype=torch.float64) + 0.5) * seq.hop * seq.latent_downsample / seq.sample_rate
    torch.testing.assert_close(at_times(sync_slots(s), centre), segment_aligned(s, seq))


def test_sync_conditioned_mono2stereo_pans_from_tokens_and_round_trips(tmp_path):
    torch.manual_seed(0)
    m = Mono2Stereo(n_mels=16, visual_dim=6, hidden=16, layers=2, cond="sync", frame_seconds=512 / 44100)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    mel = torch.randn(2, 16, 86) - 4                      # 1 s of mel frames
    sync = torch.zeros(2, 16, 6)                           # 2 segments -> 12 slots = 0.96 s
    sync[:, 5] = 3.0                                       # one token of segment 0: frames 10-11 = 0.40-0.48 s
    a, b = m(mel, sync), m(mel, torch.zeros_like(sync))
    changed = (a - b).abs().amax(dim=(0, 1, 2))            # per mel frame
    t = (torch.arange(86) + 0.5) * 512 / 44100
    # the token acts where its frames are (the convs spread it a little; GroupNorm a little everywhere)
    assert 0.36 < t[changed.argmax()] < 0.52
    assert changed[t < 0.2].max() < 0.3 * changed.max() and changed[t > 0.7].max() < 0.3 * changed.max()
    path = save_state_dict(m.state_dict(), tmp_path / "m2s.safetensors")
    back = load_mono2stereo(path)
    assert back.cfg.cond == "sync" and back.cfg.frame_seconds == pytest.approx(512 / 44100)
    torch.testing.assert_close(back(mel, sync), a)


def test_token_pans_follow_the_energy_and_ignore_quiet_spans():
    from kf_core.train.tiny_sync import token_pans
    sr = 44100
    audio = np.zeros((2, int(2.56 * sr)))
    rng = np.random.default_rng(0)
    audio += 1e-4 * rng.standard_normal(audio.shape)       # uncorrelated room tone
    burst = rng.standard_normal(int(0.1 * sr))
    a = int(1.0 * sr)
    audio[0, a:a + burst.size] += 0.8 * burst              # a sound hard left at 1.0 s
    pan, weight = token_pans(audio, sr, segments=7)
    # segment 2 (frames 16..31) token 4 spans frames 24-25 = 0.96-1.04 s (+40 ms): the burst
    assert pan[2, 4] < 0.05 and weight[2, 4] > 0.8
    assert weight[0, 0] < 0.05                             # room tone only
    assert pan.shape == weight.shape == (7, 8)


def test_stereo_trainer_learns_pan_from_conditioning_features():
    """A source that jumps from one side to the other mid-clip, and sync tokens that say where it is:
    the trained module pans each half to its side (the pan follows the features over time)."""
    from kf_core.train.stereo import StereoTrainConfig, StereoTrainer
    mel_fn = MelSpectrogram(CFG)
    g = torch.Generator().manual_seed(0)
    n = int(1.28 * CFG.sample_rate)                          # 32 sync frames = 3 segments = 16 slots
    half = n // 2                                            # 0.64 s = slot 8
    clips, conds = [], []
    for i in range(8):
        x = torch.randn(n, generator=g) * 0.3
        first_left = i % 2 == 0
        gl = torch.where(torch.arange(n) < half, 0.95, 0.3) if first_left else torch.where(torch.arange(n) < half, 0.3, 0.95)
        clips.append(torch.stack([x * gl, x * (1.25 - gl)]))
        side = torch.tensor([1.0 if first_left else -1.0] * 8 + [-1.0 if first_left else 1.0] * 8)  # per slot
        f = torch.zeros(24, 4)                                # tokens of 3 segments (slot = seg*4 + token)
        for seg in range(3):
            f[seg * 8:(seg + 1) * 8, 0] = side[seg * 4:seg * 4 + 8]
        conds.append(f)
    model = Mono2Stereo(CFG.n_mels, visual_dim=4, hidden=16, layers=1, cond="sync")
    tr = StereoTrainer(model, StereoTrainConfig(batch_size=4, lr=0.01), clips, mel_fn, conds=conds)
    first = tr.train_step()["loss"]
    for _ in range(59):
        last = tr.train_step()["loss"]
    assert last < 0.5 * first
    with torch.no_grad():
        mono = mel_fn(clips[0].mean(0, keepdim=True))
        p = model.pan(mono, conds[0][None])[0].mean(0)      # left share per mel frame
    frames = p.shape[0]
    early, late = p[5: frames // 2 - 5].mean(), p[frames // 2 + 5: -5].mean()
    assert early > 0.6 and late < 0.4  # true left shares: 0.95/(0.95+0.3) = 0.76, then 0.24
    with pytest.raises(ValueError, match="one length"):
        StereoTrainer(model, StereoTrainConfig(batch_size=2), [clips[0], clips[1][:, :-512]], mel_fn,
                      conds=conds[:2])


def test_motion_frontend_blur_raises_a_moving_object_over_sensor_noise(monkeypatch):
    # sensor noise is independent per pixel and frame: the binomial blur takes most of it out of the
    # differences, while a 6-px object moving keeps most of its own
    import kf_core.encoders.synchformer as sf
    g = torch.Generator().manual_seed(0)
    x = _moving_square() + 0.15 * torch.randn(_moving_square().shape, generator=g)

    def contrast(m):  # first difference at the square's rows against the empty rows
        return (m[0, 3:, 1, 10:16].abs().mean() / m[0, 3:, 1, 20:].abs().mean()).item()

    blurred = contrast(motion_frames(x))
    monkeypatch.setattr(sf, "_binomial_blur", lambda y: y)
    assert blurred > 1.3 * contrast(motion_frames(x))  # measured: 2.42 against 1.64


def test_sync_probe_command_reports_every_set(capsys):
    import json

    from kf_core.__main__ import main
    assert main(["eval", "sync-probe", "--clips", "3", "--heldout", "2", "--steps", "2", "--batch", "4",
                 "--workers", "1", "--threads", "1", "--depth", "1", "--width", "64", "--image-size", "32",
                 "--patch", "8"]) == 0
    out = capsys.readouterr().out
    for row in ("train", "heldout-seed", "heldout-look"):
        assert f"\n{row} " in out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["steps"] == 2 and result["frontend"] == "motion" and set(result["heldout-look"]) == {"auc", "auc_centre", "pan_corr", "by_class", "by_fps"}
    assert (result["depth"], result["width"], result["tubelet"]) == (1, 64, 2)  # the preset's tubelet
    assert (result["image_size"], result["patch_size"]) == (32, 8)
    assert main(["eval", "sync-probe", "--steps", "0"]) == 2


def test_vae_probe_trains_the_chosen_shape_and_scores_held_out_audio(capsys):
    import json

    from kf_core.__main__ import main
    assert main(["eval", "vae-probe", "--clips", "4", "--steps", "3", "--batch", "2", "--heldout", "1",
                 "--heldout-s", "1.0", "--no-pesq", "--workers", "1", "--threads", "1",
                 "--latent", "8", "--width", "16", "--mult", "1", "--gan", "0.1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["latent"], result["width"], result["mult"], result["gan"]) == (8, 16, [1], 0.1)
    held = result["heldout"]
    assert held["clips"] == 1 and held["vae_mel_l1_db"] > 0
    # Griffin-Lim on the true mel is the reference the VAE's path is held against
    assert set(held) >= {"griffin_lim", "vae_griffin_lim"} and held["griffin_lim"]["pesq"] is None
    assert held["vae_griffin_lim"]["mel_loss"] > held["griffin_lim"]["mel_loss"]  # 3 steps: far from the truth
    assert main(["eval", "vae-probe", "--steps", "0"]) == 2
    assert main(["eval", "vae-probe", "--width", "0"]) == 2  # MelVAEConfig's own message, before any work
    assert main(["eval", "vae-probe", "--gan", "-1"]) == 2


def test_vocoder_probe_trains_with_the_chosen_losses_and_scores_against_griffin_lim(capsys, tmp_path):
    import json

    from kf_core.__main__ import main
    vae = "kf_core/assets/kf-tiny/vae.safetensors"
    assert main(["eval", "vocoder-probe", "--clips", "4", "--steps", "2", "--batch", "2", "--heldout", "1",
                 "--heldout-s", "1.0", "--no-pesq", "--workers", "1", "--threads", "1", "--w-spec-mag", "1",
                 "--w-spec-phase", "0.5", "--vae", vae]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (result["w_spec_mag"], result["w_spec_phase"], result["w_mel"]) == (1.0, 0.5, 45.0)  # w_mel: the recipe's
    held = result["heldout"]
    assert set(held) >= {"vocoder", "griffin_lim", "vae_vocoder", "vae_griffin_lim", "vae_mel_l1_db"}
    assert result["beats_griffin_lim"] is False  # 2 steps
    assert main(["eval", "vocoder-probe", "--vae", str(tmp_path / "missing.safetensors")]) == 2
    assert "is not a file" in capsys.readouterr().out
    assert main(["eval", "vocoder-probe", "--w-mel", "-1"]) == 2  # the trainer config's own check, before any work
    assert "non-negative loss weights" in capsys.readouterr().out
