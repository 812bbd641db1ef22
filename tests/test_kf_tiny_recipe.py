"""The train-tiny recipe's own pieces: bucketed batch order, mono mel convention, clip lengths, extractor, card."""
from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

from kf_core.codec.mel import MelSpectrogram
from kf_core.codec.mel_vae import MEL_VAE_PRESETS
from kf_core.config import CODEC_PRESETS, SeqConfig
from kf_core.model import PRESETS
from kf_core.train.extract import MonoLogMel, make_extractor, synthetic_clip
from kf_core.train.tiny import RECIPES, TinyRecipe
from kf_core.train.tiny_card import write_curve, write_model_card
from kf_core.train.tiny_workers import clip_duration

CFG = CODEC_PRESETS["44k"]


def test_mono_mel_of_stereo_is_the_linear_mel_mean():
    mel = MelSpectrogram(CFG)
    g = torch.Generator().manual_seed(0)
    left, right = torch.randn(2, 1, 8192, generator=g) * 0.1
    mono = MonoLogMel(mel)
    same = mono(torch.stack([left, left], 1))
    assert torch.allclose(same, mel(left), atol=1e-5)
    mixed = mono(torch.stack([left, right], 1)).exp()
    assert torch.allclose(mixed, (mel(left).exp() + mel(right).exp()) / 2, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, 1\|2, T\]"):
        mono(torch.zeros(1, 3, 8192))


def test_clip_lengths_stay_in_the_trained_range():
    d = [clip_duration(i, 0) for i in range(400)]
    assert min(d) >= 2.0 and max(d) <= 10.0
    short = sum(x < 4.0 for x in d) / len(d)
    assert 0.7 < short < 0.9
    assert max(d) > 7.0  # long clips stay in the mix
    assert d == [clip_duration(i, 0) for i in range(400)]


def test_synthetic_clip_features_have_the_pipeline_lengths():
    from kf_core.codec.mel_vae import MelVAE
    from kf_core.encoders import ClipVisionEncoder, Synchformer, SynchformerConfig, T5TextEncoder
    from kf_core.encoders.seeded import seeded_init_
    sync = seeded_init_(Synchformer(SynchformerConfig(width=128, depth=2, heads=2, image_size=32)), 0).eval()
    clip_enc = ClipVisionEncoder.tiny(0)
    vae = MelVAE(MEL_VAE_PRESETS["tiny"]).eval()
    ex = make_extractor(vae=vae, codec_cfg=CFG, latent_mean=torch.zeros(16), latent_std=torch.full((16,), 2.0),
                        clip=clip_enc, sync=sync, text=T5TextEncoder.tiny(0))
    clip = synthetic_clip(0, seed=0, visual_size=ex.visual_size, sync_size=ex.sync_size, duration=2.3)
    rec = ex.record(clip)
    seq = SeqConfig(2.3)
    assert rec.latent_mean.shape == (seq.latent_len, 16) and rec.latent_std.shape == (seq.latent_len, 16)
    assert rec.visual.shape == (seq.visual_len, 128) and rec.sync.shape == (seq.sync_len, 128)
    assert rec.text.shape == (77, 128) and rec.text_mask.sum() == min(len(clip.caption.encode()) + 1, 77)  # bytes + EOS
    assert rec.duration == pytest.approx(2.3)
    # normalisation divides by latent_std: std of N(m, s²)/2 is s/2
    post = vae.encode(MonoLogMel(MelSpectrogram(CFG))(clip.wave[None]))
    assert torch.allclose(rec.latent_std, (0.5 * post.logvar).exp()[0].T / 2, atol=1e-6)


def test_recipes_validate_and_the_dit_is_the_tiny_preset_with_pointwise_mlps():
    assert RECIPES["full"].dit_steps > RECIPES["smoke"].dit_steps
    with pytest.raises(ValueError, match="must be positive"):
        TinyRecipe("bad", codec_clips=0, codec_clip_s=2.0, vae_steps=1, vae_batch=1, m2s_steps=1, m2s_batch=1,
                   sync_clips=1, sync_steps=1, sync_batch=1, dit_clips=1, dit_steps=1, dit_batch=1)
    cfg = PRESETS["kf-tiny"]  # train_dit builds exactly this
    assert (cfg.hidden_dim, cfg.num_joint, cfg.num_single, cfg.latent_dim) == (128, 2, 2, 16)
    assert cfg.audio_kernel == 1 and cfg.visual_kernel == 1
    # every recipe's Mel-VAE speaks the DiT's latent
    for recipe in RECIPES.values():
        assert MEL_VAE_PRESETS[recipe.vae_preset].latent_channels == cfg.latent_dim
    with pytest.raises(ValueError, match="vae_preset 'huge' is not one of"):
        dataclasses.replace(RECIPES["smoke"], vae_preset="huge")


def test_model_card_needs_a_finished_run_and_reports_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-tiny"):
        write_model_card(tmp_path)
    (tmp_path / "curves").mkdir()
    write_curve(tmp_path / "curves" / "dit.csv", [{"step": s, "loss": 2.0 / s} for s in range(10, 110, 10)])
    run = {"recipe": dict(vars(RECIPES["smoke"])), "seed": 0, "workers": 2, "total_s": 120.0,
           "timings_s": {"vae": 60.0, "dit": 60.0}, "machine": "x86_64", "torch": "2", "threads": 2,
           "command": "python -m kf_core train-tiny --out X --recipe smoke --seed 0",
           "sync_heldout_look": {"auc": 0.93, "pan_corr": 0.8}}
    (tmp_path / "training.json").write_text(json.dumps(run))
    text = write_model_card(tmp_path).read_text()
    assert "--recipe smoke --seed 0" in text and "2 → 0.02" in text and "over 100 steps" in text
    assert "AUC 0.930" in text and "No evaluation results" in text
    # evaluations beside the weights land in the card, v1 next to v2
    ev = {"n": 18, "seed": 0, "duration": 8.0, "rows": {"ground truth": {"onset_f1_50ms": 0.98},
                                                        "generated (video)": {"onset_f1_50ms": 0.61}}}
    (tmp_path / "eval_synthetic_heldout-look.json").write_text(json.dumps(ev))
    ev["rows"]["generated (video)"]["onset_f1_50ms"] = 0.12
    (tmp_path / "eval_v1_synthetic_heldout-look.json").write_text(json.dumps(ev))
    text = write_model_card(tmp_path).read_text()
    assert "| v2 | generated (video) | 0.610 |" in text and "| v1 | generated (video) | 0.120 |" in text
    assert "--split heldout-look" in text and text.count("ground truth") == 1


def test_sync_targets_peak_on_the_tubelet_holding_the_onset():
    from kf_core.train.tiny_sync import token_targets
    y = token_targets(torch.tensor([0.50]), 3)                 # frame 12.5: tubelet frames 12-13
    assert y.shape == (3, 8)
    assert y[0, 6] == y.max() and y[1, 2] == y.max()           # seg 0 token 6 and seg 1 token 2 (frame 8 + 4)
    assert y[2].max() < 0.01 and token_targets(torch.tensor([]), 2).sum() == 0


def test_sync_targets_mark_the_token_whose_frames_first_show_the_contact():
    from kf_core.train.tiny_sync import token_targets
    # frames are on screen from k/25 s: an onset on frame 12's time is seen on frame 12 (token 6, frames
    # 12-13), one just before it first on frame 12 too, one just after frame 13's time on frame 14 (token 7)
    for onset, token in ((0.48, 6), (0.47, 6), (0.521, 7), (0.04, 0), (0.0, 0)):
        y = token_targets(torch.tensor([onset]), 1)
        assert y.sum() == 1 and y[0, token] == 1, (onset, y)
    # every onset inside the stream has exactly one positive token in each segment that holds its frame
    onsets = torch.linspace(0.0, 1.2, 97)
    for e in onsets:
        y = token_targets(e[None], 3)
        frame = int(torch.ceil(e.double() * 25 - 1e-6))
        holding = [s for s in range(3) if 8 * s <= frame < 8 * s + 16]
        assert y.sum() == len(holding) and all(y[s].sum() == 1 for s in holding)


def test_parallel_map_reports_a_failing_worker_instead_of_hanging():
    # multiprocessing.Pool respawns a worker whose initializer raises, forever; ours must raise
    from concurrent.futures.process import BrokenProcessPool

    from kf_core.train.tiny_workers import parallel_map
    missing = "/nonexistent/kf-tiny-work"  # os.chdir raises FileNotFoundError in every worker
    with pytest.raises(BrokenProcessPool):
        list(parallel_map(abs, range(-4, 0), workers=2, initializer=os.chdir, initargs=(missing,)))
    assert list(parallel_map(abs, range(-3, 0), workers=1, initializer=lambda: None, initargs=())) == [3, 2, 1]


def test_vocoder_stage_runs_alone_on_a_finished_run_and_ships_its_file(tmp_path):
    """train-tiny re-run on a work folder where every other stage is done: only the vocoder trains
    (smoke recipe), on the cached codec set and the run's Mel-VAE; the manifest names its file, the
    loader reads it, and the summary holds its held-out numbers against Griffin-Lim."""
    from kf_core.codec.bundle import codec_from_roles
    from kf_core.codec.griffinlim import GriffinLim
    from kf_core.codec.mel_vae import MelVAE
    from kf_core.codec.vocos import Vocos
    from kf_core.loading.state import save_state_dict
    from kf_core.train.tiny import train_tiny
    from kf_core.train.tiny_codec import codec_audio
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    work.mkdir()
    torch.manual_seed(0)
    save_state_dict(MelVAE(MEL_VAE_PRESETS["tiny"]).state_dict(), out / "vae.safetensors")
    audio = torch.stack([codec_audio(i, seed=0, duration=2.0) for i in range(4)])        # N 2 T fp16
    torch.save({"audio": audio, "visual": torch.zeros(4, 16, 8)}, work / "codec_set.pt")
    done = ("encoders", "semantic", "sync_encoder", "codec_set", "vae", "mono2stereo", "features", "dit")
    (work / "summary.json").write_text(json.dumps({"timings_s": {k: 1.0 for k in done}}))
    (out / "manifest.json").write_text(json.dumps({"components": {"vae": "vae.safetensors", "vocoder": None}}))
    assert isinstance(codec_from_roles({"vae": out / "vae.safetensors"}).vocoder, GriffinLim)  # no file: GL

    summary = train_tiny(out, work, RECIPES["smoke"], seed=0, workers=1, threads=1)
    assert list(summary["timings_s"]) == [*done, "vocoder"]
    held = summary["vocoder_heldout"]
    manifest = json.loads((out / "manifest.json").read_text())
    voc, gl = held["vocoder"], held["griffin_lim"]
    beats = voc["mel_loss"] < gl["mel_loss"] and voc["mcd"] < gl["mcd"]
    if voc.get("pesq") is not None:
        beats = beats and voc["pesq"] > gl["pesq"]
    # named in the manifest only when it beats Griffin-Lim (a 20-step smoke vocoder does not)
    assert manifest["components"]["vocoder"] == ("vocoder.safetensors" if beats else None)
    assert summary["vocoder_shipped"] is beats
    codec = codec_from_roles({"vae": out / "vae.safetensors", "vocoder": out / "vocoder.safetensors"})
    assert isinstance(codec.vocoder, Vocos)
    curve = (out / "curves" / "vocoder.csv").read_text().splitlines()
    assert curve[0].startswith("step,") and len(curve) == 1 + RECIPES["smoke"].vocoder_steps // 10
    assert held["clips"] == RECIPES["smoke"].vocoder_eval_clips
    for name in ("vocoder", "griffin_lim", "vae_vocoder", "vae_griffin_lim"):
        assert held[name]["mel_loss"] > 0 and held[name]["mcd"] > 0 and held[name]["rtf"] > 0
    assert held["vae_mel_l1_db"] > 0
    card = (out / "MODEL_CARD.md").read_text()
    assert "Held-out (2 clips of 1.5 s)" in card
    assert "Mel-VAE (`tiny-v2`, width 64, C 16 at 43 Hz)" in card and f"{held['vae_mel_l1_db']:.2f} dB on the held-out" in card


def test_vae_schedule_runs_alg2s_gan_stages_only_with_a_gan_weight():
    from kf_core.train.schedules import vae_loss_weights
    from kf_core.train.tiny_codec import vae_train_config
    plain = vae_train_config(1000, 16, 0).stages
    assert plain.gan_upper == 0.0 and plain.stage1_end == 500 and plain.stage3_end > 1000  # never reaches stage 3
    gan = vae_train_config(1000, 16, 0, gan_upper=0.1).stages
    assert (gan.stage1_end, gan.stage2_end, gan.stage3_end, gan.gan_upper) == (400, 700, 900, 0.1)
    assert vae_loss_weights(800, gan).gan == pytest.approx(0.05) and not vae_loss_weights(800, gan).freeze_encoder
    last = vae_loss_weights(1000, gan)
    assert (last.stage, last.gan, last.freeze_encoder) == (4, 0.1, True)
