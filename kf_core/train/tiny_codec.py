"""kf-tiny's codec stages: the short-clip audio set, the Mel-VAE (Alg. 2), latent statistics, the
Vocos vocoder, Mono2Stereo.

The codec set is `n` synthetic training clips of a fixed short length (stereo audio + the frozen
CLIP features of their frames at 8 fps). The Mel-VAE learns mono log-mels (the channels' mean in
linear mel, the identity Mono2Stereo keeps); Mono2Stereo learns to split them back into left and
right from the mono mel and the CLIP features, which say where on screen the source is. The
vocoder learns mono waves (the channels' mean) from their mels and, given the trained Mel-VAE,
from its decoder's mels as well.

Shape legend: N clips, T samples, M mel bins, F mel frames, C latent channels, Lv visual frames,
Dv visual width.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as Fn

from ..codec.griffinlim import GriffinLim
from ..codec.mel import MelSpectrogram
from ..codec.mel_vae import MEL_VAE_PRESETS, MelVAE, MelVAEConfig
from ..codec.mono2stereo import Mono2Stereo, pan_targets
from ..codec.vocos import VOCOS_PRESETS, Vocos, vocos_config_for
from ..config import CodecConfig, SeqConfig
from ..eval.codec_eval import heldout_synthetic
from ..eval.metrics import codec_metrics
from .extract import MonoLogMel
from .gan import DiscConfig
from .runner import RunOptions, run
from .schedules import VAEStages
from .vae import VAETrainConfig, VAETrainer, init_mel_vae
from .vae import latent_statistics as posterior_statistics
from .vocoder import VocoderTrainConfig, VocoderTrainer, decoder_mels

__all__ = ["CodecSet", "codec_clip", "codec_audio", "codec_item", "train_vae", "vae_train_config", "latent_statistics",
           "train_vocoder", "vocoder_train_config", "vocoder_state", "vocoder_heldout",
           "codec_heldout", "beats_griffin_lim", "train_mono2stereo"]

# kf-tiny's codec recipe (issue 12); the step counts and batches are TinyRecipe's
VAE_LR = 1e-3
VAE_RECON = "mse"
VAE_STAGE_FRACTIONS = (0.5, 1.0, 1.0)  # last step of stages 1-3 as fractions of the steps
VAE_GAN_UPPER = 0.0
VAE_GAN_STAGE_FRACTIONS = (0.4, 0.7, 0.9)  # with a GAN weight: its ramp, then decoder-only refinement
VOCODER_LR = 1e-3
VOCODER_W_PHASE = 0.0
VOCODER_VAE_SHARE = 0.5

log = logging.getLogger(__name__)


@dataclass
class CodecSet:
    """Short stereo clips [N,2,T] (float16 storage) and their CLIP features [N,Lv,Dv]."""

    audio: torch.Tensor
    visual: torch.Tensor

    def __len__(self) -> int:
        return self.audio.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        """Clip i -> stereo wave [2, T] float32 (the item form the codec trainers crop)."""
        return self.audio[i].float()


def codec_clip(index: int, *, seed: int, duration: float | None, sample_rate: int = 44100):
    """Clip `index` of the codec seed range of the synthetic world (duration None: the world's own)."""
    from ..data.dataset import split_seed
    from ..data.synthetic import make_clip
    # a seed range of its own (offset 500 M) so codec clips never repeat the DiT's clips
    return make_clip(split_seed(500_000_000 + index, seed, "train"), duration=duration, sample_rate=sample_rate)


def codec_audio(index: int, *, seed: int, duration: float | None, sample_rate: int = 44100) -> torch.Tensor:
    """Codec clip `index` -> its stereo wave [2,T] float16 (what `train vae|vocoder --data synthetic:N` use)."""
    return torch.from_numpy(codec_clip(index, seed=seed, duration=duration, sample_rate=sample_rate).audio).half()


def codec_item(index: int, *, seed: int, duration: float, clip_encoder, sample_rate: int = 44100
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Training clip `index` of the synthetic world at `duration` s -> (stereo wave [2,T] fp16,
    CLIP features [Lv,Dv] of its frames sampled by time at 8 fps)."""
    from ..io import frames_from_images, streams_for
    c = codec_clip(index, seed=seed, duration=duration, sample_rate=sample_rate)
    seq = SeqConfig(duration, sample_rate=sample_rate)
    spec = streams_for(seq, visual_size=clip_encoder.spec.resize_to or clip_encoder.spec.image_size)["visual"]
    frames = frames_from_images(torch.from_numpy(c.frames), c.fps, spec.fps, size=spec.size, mode=spec.mode,
                                count=spec.count, duration=duration)
    with torch.no_grad():
        visual = clip_encoder.encode_frames(frames).float()                  # Lv Dv
    return torch.from_numpy(c.audio).half(), visual


# ---------------------------------------------------------------- Mel-VAE
def vae_train_config(steps: int, batch_size: int, seed: int, gan_upper: float = VAE_GAN_UPPER) -> VAETrainConfig:
    """kf-tiny's Alg. 2 schedule for `steps` steps (see `train_vae`); with `gan_upper` > 0 stages 3 and 4
    (the GAN ramp, then the decoder alone) take the last 30 % of the steps."""
    fractions = VAE_GAN_STAGE_FRACTIONS if gan_upper > 0 else VAE_STAGE_FRACTIONS
    s1, s2, s3 = (max(1, round(steps * f)) for f in fractions)
    s2, s3 = max(s2, s1 + 1), max(s3, s1 + 2, s2 + 1)
    return VAETrainConfig(stages=VAEStages(s1, s2, s3, kl_upper=1e-4, gan_upper=gan_upper), recon=VAE_RECON,
                          batch_size=batch_size, segment_frames=64, lr=VAE_LR, lr_min=VAE_LR / 20,
                          decay_steps=steps, disc=DiscConfig(channels=16, layers=3), seed=seed)


def train_vae(data: CodecSet, codec_cfg: CodecConfig, *, steps: int, batch_size: int, seed: int, out,
              vae_cfg: MelVAEConfig = MEL_VAE_PRESETS["tiny"], gan_upper: float = VAE_GAN_UPPER
              ) -> tuple[MelVAE, list[dict]]:
    """Codec set -> Mel-VAE of shape `vae_cfg` trained by `VAETrainer`, run folder `out` (resumable)."""
    mel_fn = MonoLogMel(MelSpectrogram(codec_cfg))
    vae = init_mel_vae(vae_cfg, data, mel_fn, seed=seed)
    cfg = vae_train_config(steps, batch_size, seed, gan_upper)
    trainer = VAETrainer(vae, cfg, data, mel_fn, hop=codec_cfg.hop)
    opts = RunOptions(out, steps=steps, log_every=10, ckpt_every=max(steps // 4, 1), progress=False,
                      tensorboard=False, export_name="vae", export_kind="vae")
    rows = run(trainer, opts, config={"stage": "vae", **_plain(cfg.to_dict())}, export_config=_plain(cfg.to_dict()))
    return vae.eval(), rows


def latent_statistics(vae: MelVAE, data: CodecSet, codec_cfg: CodecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means of every codec clip -> per-channel (mean [C], std [C]) for the latent normalisation."""
    return posterior_statistics(vae, data, MonoLogMel(MelSpectrogram(codec_cfg)))


# ---------------------------------------------------------------- vocoder
def vocoder_train_config(steps: int, batch_size: int, seed: int) -> VocoderTrainConfig:
    """kf-tiny's vocoder schedule for `steps` steps (see `train_vocoder`)."""
    return VocoderTrainConfig(batch_size=batch_size, segment_frames=32, lr=VOCODER_LR, lr_min=VOCODER_LR / 20,
                              warmup_steps=50, decay_steps=max(steps - 50, 1), w_gan=0.0, w_phase=VOCODER_W_PHASE,
                              seed=seed)


def train_vocoder(data: CodecSet, codec_cfg: CodecConfig, *, steps: int, batch_size: int, seed: int, out,
                  vae: MelVAE | None = None, **overrides) -> tuple[Vocos, list[dict]]:
    """Codec set -> the Vocos vocoder `VOCOS_PRESETS["tiny"]` for `codec_cfg`'s mels, run folder `out`.

    With `vae`, VOCODER_VAE_SHARE of every batch is vocoded from that Mel-VAE decoder's mels of the
    same crops (paper §4.5.2 stage 4), so the codec path improves, not only mel -> wave. Losses:
    mel L1 + multi-resolution STFT (no GAN: on two CPU cores its discriminators cost ~20× the
    generator). Cost per step at batch 16 (8): 0.26 s (0.13 s) wall on two threads, 0.35 s on one, measured
    on the 2-core machine with one other busy process; the full recipe's 3000 steps take ~13 min.
    `overrides` replace fields of `vocoder_train_config` (the loss weights, for `eval vocoder-probe`).
    """
    torch.manual_seed(seed)
    gen = Vocos(vocos_config_for(codec_cfg, VOCOS_PRESETS["tiny"]))
    mel_fn = MonoLogMel(MelSpectrogram(codec_cfg))
    source = decoder_mels(vae, share=VOCODER_VAE_SHARE) if vae is not None else None
    cfg = dataclasses.replace(vocoder_train_config(steps, batch_size, seed), **overrides)
    stft = MelSpectrogram(codec_cfg).stft if cfg.w_spec_mag > 0 or cfg.w_spec_phase > 0 else None
    trainer = VocoderTrainer(gen, cfg, data, mel_fn, hop=codec_cfg.hop, mel_source=source, stft=stft)
    opts = RunOptions(out, steps=steps, log_every=10, ckpt_every=max(steps // 4, 1), progress=False,
                      tensorboard=False, export_name="vocoder", export_kind="vocoder")
    config = {"stage": "vocoder", "vae_share": VOCODER_VAE_SHARE if vae is not None else 0.0, **_plain(cfg.to_dict())}
    rows = run(trainer, opts, config=config, export_config=config)
    return gen.eval(), rows


def vocoder_state(gen: Vocos) -> dict[str, torch.Tensor]:
    """A trained vocoder -> its state dict with float tensors in float16 (the shipped storage)."""
    return {k: (v.detach().half() if v.is_floating_point() else v.detach()) for k, v in gen.state_dict().items()}


def vocoder_heldout(vocoder: Vocos, vae: MelVAE, codec_cfg: CodecConfig, *, clips: int, seconds: float, seed: int,
                    pesq: bool = True) -> dict:
    """Held-out world audio -> the vocoder against Griffin-Lim (32 iterations), both on the true mel and on
    the Mel-VAE's reconstruction of it (see `codec_heldout`)."""
    return codec_heldout(vae, codec_cfg, {"vocoder": vocoder.eval(), "griffin_lim": GriffinLim(codec_cfg)},
                         clips=clips, seconds=seconds, seed=seed, pesq=pesq)


def beats_griffin_lim(held: dict) -> bool:
    """`codec_heldout` numbers -> whether the vocoder beats Griffin-Lim on the held-out true mels on mel
    loss, MCD and PESQ (where both have one): issue 12's rule for shipping it."""
    voc, gl = held["vocoder"], held["griffin_lim"]
    better = voc["mel_loss"] < gl["mel_loss"] and voc["mcd"] < gl["mcd"]
    if voc.get("pesq") is not None and gl.get("pesq") is not None:
        better = better and voc["pesq"] > gl["pesq"]
    return better


def codec_heldout(vae: MelVAE | None, codec_cfg: CodecConfig, vocoders: dict, *, clips: int, seconds: float,
                  seed: int, pesq: bool = True) -> dict:
    """Held-out world audio -> for each of `vocoders` (name -> mel [1,M,F] to wave [1,1,T]), on the true mel
    and (prefix `vae_`) on the Mel-VAE's reconstruction of it (posterior mean): mean mel L1, MCD and PESQ
    (None where PESQ cannot score the audio or `pesq` is off), plus each one's real-time factor on this
    process's threads; `vae_mel_l1_db` is the Mel-VAE's own mean |log-mel error| in dB.

    The clips are `eval codec --synthetic`'s (held-out seeds no trainer draws, classes cycling), mono,
    cut to whole latent tokens. Without a `vae` only the true mels are scored.
    """
    front = MelSpectrogram(codec_cfg)
    step = codec_cfg.samples_per_latent
    waves = [w[0, : w.shape[-1] // step * step] for _, w in heldout_synthetic(clips, seconds, seed, codec_cfg.sample_rate)]
    rows: dict[str, list[dict]] = {}
    spent: dict[str, float] = {}
    errs = []
    with torch.inference_mode():
        for wave in waves:                                                     # T
            mel = front(wave[None])                                            # 1 M F
            paths = [("", mel)]
            if vae is not None:
                rec = vae.decode(vae.encode(mel.to(next(vae.parameters()))).mean, frames=mel.shape[-1]).float()
                errs.append(Fn.l1_loss(rec, mel).item())
                paths.append(("vae_", rec))
            for name, voc in vocoders.items():
                for path, m in paths:
                    t0 = time.perf_counter()
                    est = voc(m)[0, 0]                                         # T
                    spent[path + name] = spent.get(path + name, 0.0) + time.perf_counter() - t0
                    row = codec_metrics(wave, est, codec_cfg, with_pesq=pesq)
                    rows.setdefault(path + name, []).append({k: row[k] for k in ("mel_loss", "mcd", "pesq")})
    audio_s = sum(w.shape[-1] for w in waves) / codec_cfg.sample_rate
    scale = 20 / math.log(10) if codec_cfg.log == "ln" else 20.0
    out: dict = {"clips": len(waves), "seconds": seconds, "threads": torch.get_num_threads()}
    if errs:
        out["vae_mel_l1_db"] = round(sum(errs) / len(errs) * scale, 3)
    for name, rs in rows.items():
        mean = {}
        for k in ("mel_loss", "mcd", "pesq"):
            vals = [r[k] for r in rs if r[k] is not None]
            mean[k] = round(sum(vals) / len(vals), 4) if vals else None
        out[name] = dict(mean, rtf=round(spent[name] / audio_s, 4))
    return out


# ---------------------------------------------------------------- Mono2Stereo
def train_mono2stereo(data: CodecSet, codec_cfg: CodecConfig, *, steps: int, batch_size: int, seed: int,
                      visual_dim: int, log_every: int = 10) -> tuple[Mono2Stereo, list[dict]]:
    """Codec set -> visual-conditioned Mono2Stereo trained on whole clips.

    Loss: L1 between predicted and true left/right log-mels, weighted per bin by the mono mel's
    linear magnitude (normalised per clip), so the pan is learnt where the sound is, not in the
    room tone. (The generic `StereoTrainer` has no visual input, and the pan of a synthetic source
    is only knowable from where it is on screen.)
    """
    torch.manual_seed(seed)
    mel = MelSpectrogram(codec_cfg)
    model = Mono2Stereo(codec_cfg.n_mels, visual_dim=visual_dim, hidden=64, layers=4, log=codec_cfg.log)
    with torch.no_grad():
        lr = torch.stack([mel(data[i]) for i in range(len(data))])            # N 2 M F
        mono, _ = pan_targets(lr[:, 0], lr[:, 1], codec_cfg.log, codec_cfg.log_floor)   # N M F
        weight = mono.exp() if codec_cfg.log == "ln" else torch.pow(10.0, mono)
        weight = weight / weight.mean(dim=(1, 2), keepdim=True)              # N M F
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    g = torch.Generator().manual_seed(seed)
    rows = []
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(data), (batch_size,), generator=g)
        pred = model(mono[idx], data.visual[idx])                              # B 2 M F
        loss = ((pred - lr[idx]).abs() * weight[idx][:, None]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            rows.append({"step": step, "loss": loss.item(), "lr": opt.param_groups[0]["lr"]})
    return model.eval(), rows


def _plain(d: dict) -> dict:
    """Dataclass dicts -> JSON-safe (tuples to lists)."""
    return {k: (_plain(v) if isinstance(v, dict) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def mel_reconstruction_db(vae: MelVAE, data: CodecSet, codec_cfg: CodecConfig) -> float:
    """Mean |log-mel error| of encode→decode (posterior mean) on `data`, in dB."""
    mel_fn = MonoLogMel(MelSpectrogram(codec_cfg))
    errs = []
    with torch.no_grad():
        for i in range(len(data)):
            m = mel_fn(data[i][None])                                          # 1 M F
            rec = vae.decode(vae.encode(m).mean, frames=m.shape[-1])
            errs.append(Fn.l1_loss(rec, m).item())
    scale = 20 / math.log(10) if codec_cfg.log == "ln" else 20.0
    return float(sum(errs) / len(errs) * scale)
