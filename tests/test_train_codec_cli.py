"""`train vae`, `train vocoder` and `train stereo` from the CLI on synthetic clips: a few steps through every Alg. 2
stage (and the vocoder's GAN and decoder-mel inputs), exact resume (4 steps straight = 2 + resume
+ 2), loadable exports, clear errors before slow work, and the bare `train` still meaning the flow model."""
from __future__ import annotations

import math

import pytest
import torch

from kf_core.__main__ import build_parser, main
from kf_core.codec.load import load_vae, load_vocoder
from kf_core.codec.mel_vae import MelVAE
from kf_core.codec.vocos import Vocos
from kf_core.loading.state import read_state_dict
from kf_core.train.audio_sources import load_audio_clips, parse_audio_spec
from kf_core.train.tiny_card import read_curve

COMMON = ["--data", "synthetic:3,1", "--batch-size", "2", "--log-every", "1", "--no-progress", "--no-tensorboard",
          "--threads", "1"]
VAE = ["train", "vae", *COMMON, "--segment-frames", "8", "--stages", "1,2,3", "--decay-steps", "4",
       "--disc-channels", "4"]


def _same_weights(a, b) -> bool:
    sa, sb = read_state_dict(a), read_state_dict(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _straight_and_resumed(cmd: list[str], root) -> tuple:
    """4 steps straight, and 2 steps + a resumed run to 4 -> (the two run folders)."""
    straight, resumed = root / "straight", root / "resumed"
    assert main([*cmd, "--steps", "4", "--ckpt-every", "2", "--out", str(straight)]) == 0
    assert main([*cmd, "--steps", "2", "--out", str(resumed)]) == 0
    assert main([*cmd, "--steps", "4", "--out", str(resumed)]) == 0
    return straight, resumed


@pytest.fixture(scope="module")
def vae_runs(tmp_path_factory):
    return _straight_and_resumed(VAE, tmp_path_factory.mktemp("vae"))


def test_train_vae_runs_every_stage_and_resumes_exactly(vae_runs):
    straight, resumed = vae_runs
    rows = read_curve(straight / "metrics.csv")
    assert [int(r["stage"]) for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) for r in rows) and math.isnan(rows[1]["d"]) and math.isfinite(rows[2]["d"])
    assert _same_weights(straight / "vae.safetensors", resumed / "vae.safetensors")
    vae = load_vae(straight / "vae.safetensors")
    assert isinstance(vae, MelVAE) and vae.latent_channels == 16
    stats = read_state_dict(straight / "latent_stats.safetensors")
    assert stats["mean"].shape == stats["std"].shape == (16,) and (stats["std"] > 0).all()


def test_train_vocoder_with_gan_and_decoder_mels_resumes_exactly(vae_runs, tmp_path):
    vae = vae_runs[0] / "vae.safetensors"
    cmd = ["train", "vocoder", *COMMON, "--segment-frames", "4", "--decay-steps", "4", "--w-gan", "1",
           "--gan-start", "3", "--disc-channels", "4", "--vae", str(vae), "--vae-share", "0.5",
           "--export-dtype", "float16"]
    straight, resumed = _straight_and_resumed(cmd, tmp_path)
    rows = read_curve(straight / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert math.isnan(rows[1]["d"])      # no discriminator before --gan-start
    assert math.isfinite(rows[3]["d"]) and math.isfinite(rows[3]["mel"])
    assert _same_weights(straight / "vocoder.safetensors", resumed / "vocoder.safetensors")
    assert read_state_dict(straight / "vocoder.safetensors")["istft_head.weight"].dtype == torch.float16
    voc = load_vocoder(straight / "vocoder.safetensors")
    assert isinstance(voc, Vocos)
    with torch.no_grad():
        assert voc(torch.randn(1, 128, 7)).shape == (1, 1, 7 * 512)


def test_train_stereo_resumes_exactly_and_exports_a_loadable_mono2stereo(tmp_path):
    from kf_core.codec.mono2stereo import load_mono2stereo
    cmd = ["train", "stereo", *COMMON, "--segment-frames", "8", "--hidden", "16", "--layers", "1", "--warmup", "2",
           "--decay-steps", "3"]
    straight, resumed = _straight_and_resumed(cmd, tmp_path)
    rows = read_curve(straight / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) for r in rows)
    assert rows[0]["lr"] < rows[1]["lr"] > rows[2]["lr"] > rows[3]["lr"]     # warm-up, then cosine decay
    assert _same_weights(straight / "mono2stereo.safetensors", resumed / "mono2stereo.safetensors")
    m2s = load_mono2stereo(straight / "mono2stereo.safetensors")
    mono = torch.randn(1, 128, 9)
    with torch.no_grad():
        lr = m2s(mono)
    assert lr.shape == (1, 2, 128, 9)
    # the mono mix of the prediction is the input (linear mel domain): energy is kept by construction
    torch.testing.assert_close((lr.exp().mean(1)).log(), mono, atol=1e-4, rtol=1e-4)


def test_train_stereo_refuses_mono_audio(tmp_path):
    from kf_core.io import write_audio
    (tmp_path / "a").mkdir()
    write_audio(tmp_path / "a" / "mono.wav", 0.1 * torch.randn(1, 44100), 44100)
    with pytest.raises(ValueError, match="needs stereo audio"):
        main(["train", "stereo", "--data", f"audio:{tmp_path / 'a'}", "--steps", "2", "--out", str(tmp_path / "o"),
              "--no-progress", "--no-tensorboard"])
    assert not (tmp_path / "o" / "mono2stereo.safetensors").exists()


def test_bad_arguments_fail_before_reading_data(tmp_path):
    with pytest.raises(ValueError, match="--stages must increase"):
        main(["train", "vae", *COMMON, "--steps", "4", "--stages", "3,2,1", "--out", str(tmp_path / "a")])
    with pytest.raises(ValueError, match="--vae-share must be in"):
        main(["train", "vocoder", *COMMON, "--steps", "4", "--vae-share", "2", "--out", str(tmp_path / "b")])
    with pytest.raises(ValueError, match="bad audio data description"):
        parse_audio_spec("shards:/x")
    with pytest.raises(ValueError, match="does not exist"):
        load_audio_clips(["audio:/no/such/folder"], sample_rate=44100)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_train_without_a_sub_command_is_still_the_flow_model():
    _, args = build_parser(["train", "--preset", "kf-tiny", "--data", "synthetic:6", "--steps", "4", "--out", "x"])
    assert args._module == "kf_core.train.cli" and args.preset == "kf-tiny"
    _, args = build_parser(["train", "flow", "--data", "synthetic:6", "--steps", "4", "--out", "x"])
    assert args._module == "kf_core.train.cli"
    _, args = build_parser(["train", "vocoder", "--data", "synthetic:6", "--steps", "4", "--out", "x"])
    assert args._module == "kf_core.train.cli_vocoder" and args.w_gan == 0.0
