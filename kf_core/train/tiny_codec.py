"""kf-tiny's codec stages: the short-clip audio set, the Mel-VAE (Alg. 2), latent statistics, Mono2Stereo.

The codec set is `n` synthetic training clips of a fixed short length (stereo audio + the frozen
CLIP features of their frames at 8 fps). The Mel-VAE learns mono log-mels (the channels' mean in
linear mel, the identity Mono2Stereo keeps); Mono2Stereo learns to split them back into left and
right from the mono mel and the CLIP features, which say where on screen the source is.

Shape legend: N clips, T samples, M mel bins, F mel frames, C latent channels, Lv visual frames,
Dv visual width.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as Fn

from ..codec.mel import MelSpectrogram
from ..codec.mel_vae import MEL_VAE_PRESETS, MelVAE
from ..codec.mono2stereo import Mono2Stereo, pan_targets
from ..config import CodecConfig, SeqConfig
from .extract import MonoLogMel

__all__ = ["CodecSet", "codec_item", "train_vae", "latent_statistics", "train_mono2stereo"]

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
def train_vae(data: CodecSet, codec_cfg: CodecConfig, *, steps: int, batch_size: int, seed: int, out
              ) -> tuple[MelVAE, list[dict]]:
    """Codec set -> Mel-VAE "tiny" trained by `VAETrainer` (stage 1 MSE, stage 2 KL ramp), run folder `out`.

    The GAN stages of Alg. 2 are not run: on two CPU cores their discriminator would take the
    budget the DiT needs, and the mel MSE alone already reconstructs the synthetic sounds closely.
    """
    from .runner import RunOptions, run
    from .schedules import VAEStages
    from .vae import VAETrainConfig, VAETrainer
    torch.manual_seed(seed)
    vae = MelVAE(MEL_VAE_PRESETS["tiny"])
    mel_fn = MonoLogMel(MelSpectrogram(codec_cfg))
    with torch.no_grad():
        mels = torch.cat([mel_fn(data[i][None]) for i in range(len(data))])   # N M F
    vae.set_mel_statistics(mels.mean(dim=(0, 2)), mels.std(dim=(0, 2)).clamp_min(1e-3))
    stage1 = max(1, steps // 2)
    cfg = VAETrainConfig(stages=VAEStages(stage1_end=stage1, stage2_end=steps, stage3_end=steps + 1),
                         batch_size=batch_size, segment_frames=64, lr=1e-3, seed=seed)
    trainer = VAETrainer(vae, cfg, data, mel_fn, hop=codec_cfg.hop)
    opts = RunOptions(out, steps=steps, log_every=10, ckpt_every=max(steps // 2, 1), progress=False,
                      tensorboard=False, export_name="vae", export_kind="vae")
    rows = run(trainer, opts, config={"stage": "vae", **_plain(cfg.to_dict())}, export_config=_plain(cfg.to_dict()))
    return vae.eval(), rows


def latent_statistics(vae: MelVAE, data: CodecSet, codec_cfg: CodecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means of every codec clip -> per-channel (mean [C], std [C]) for the latent normalisation."""
    mel_fn = MonoLogMel(MelSpectrogram(codec_cfg))
    with torch.no_grad():
        zs = [vae.encode(mel_fn(data[i][None])).mean[0] for i in range(len(data))]  # C La each
    z = torch.cat(zs, dim=1)                                                   # C N·La
    return z.mean(dim=1), z.std(dim=1).clamp_min(1e-4)


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
