"""Mono2Stereo trainer: targets are the left/right log-mels of stereo clips, the input their mono mix.

The mono mel is formed in the linear mel domain, mono = (L + R) / 2 (the contract Mono2Stereo
preserves by construction), then compressed with the codec's log. Loss: L1 between predicted and
true left/right log-mels.

Shape legend: B batch, M mel bins, F mel frames, T samples.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ..codec.mel import log_expand
from ..codec.mono2stereo import pan_targets
from .checkpoint import rng_state, set_rng_state
from .clips import ClipBatches
from .data import BatchOrder
from .distributed import DistContext, all_reduce_mean, wrap
from .vocoder import cosine_lr

__all__ = ["StereoTrainConfig", "StereoTrainer", "mono_and_channels"]


@dataclass(frozen=True)
class StereoTrainConfig:
    batch_size: int = 8
    segment_frames: int = 64
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    seed: int = 0
    lr_min: float = 0.0
    warmup_steps: int = 0
    decay_steps: int = 0   # cosine from lr to lr_min over these steps after the warm-up; 0: the trainer's `steps`

    def __post_init__(self) -> None:
        if self.segment_frames <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ValueError(f"StereoTrainConfig needs positive batch_size/segment_frames/lr, got {self}")
        if not 0 <= self.lr_min <= self.lr or self.warmup_steps < 0 or self.decay_steps < 0:
            raise ValueError(f"StereoTrainConfig needs 0 <= lr_min <= lr and warmup/decay steps >= 0, got {self}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def mono_and_channels(wave: torch.Tensor, mel_fn, log: str = "ln", floor: float = 1e-5):
    """Stereo waves [B, 2, T] -> (mono log-mel [B, M, F] mixed in the linear domain, the channel
    log-mels [B, 2, M, F]) — the Mono2Stereo input and target (`codec.mono2stereo.pan_targets`)."""
    lr = mel_fn(wave.flatten(0, 1)).unflatten(0, (wave.shape[0], 2))   # B 2 M F
    mono, _ = pan_targets(lr[:, 0], lr[:, 1], log, floor)              # B M F
    return mono, lr


class StereoTrainer:
    """Trains `model(mono_logmel [B,M,F], visual=None) -> [B,2,M,F]` on stereo clips ([2, T] items).

    Without `conds` it learns from random crops of `segment_frames`. With `conds` (one feature tensor
    per clip, e.g. its sync tokens [Ls, Ds]) every clip must have the same length and is used whole,
    so the features stay aligned with the audio. The loss is L1 between predicted and true channel
    log-mels, weighted per bin by the mono mel's linear magnitude (normalised per clip), so the pan is
    learnt where the sound is, not in the room tone.
    """

    def __init__(self, model: nn.Module, cfg: StereoTrainConfig, clips, mel_fn, *, log: str = "ln",
                 hop: int = 512, device="cpu", conds=None, steps: int | None = None,
                 ctx: DistContext | None = None) -> None:
        self.ctx = ctx or DistContext(device=torch.device(device))
        self.cfg, self.mel_fn, self.log, self.device = cfg, mel_fn, log, self.ctx.device
        self.model = model.to(self.device)
        self.step_model = wrap(self.model, self.ctx)   # DDP under torchrun; the model itself otherwise
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=cfg.betas)
        # cosine decay over cfg.decay_steps (or `steps`, the run length, as train-tiny gives it), else constant
        decay, floor = cfg.decay_steps or steps or 0, cfg.lr_min / cfg.lr
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: cosine_lr(s + 1 if cfg.warmup_steps else s, 1.0, floor, cfg.warmup_steps, decay))
        self.clips, self.conds = clips, conds
        if conds is not None:
            lengths = {int(torch.as_tensor(c).shape[-1]) for c in clips}
            if len(conds) != len(clips) or len(lengths) != 1:
                raise ValueError(f"conditioned Mono2Stereo training needs one feature tensor per clip and clips of "
                                 f"one length; got {len(conds)} features for {len(clips)} clips of lengths "
                                 f"{sorted(lengths)}")
            if self.ctx.distributed:
                raise ValueError("conditioned Mono2Stereo training (whole clips with features) runs in one process")
            self.order = BatchOrder(len(clips), cfg.batch_size, seed=cfg.seed)
        else:
            self.batches = ClipBatches(clips, cfg.batch_size, cfg.segment_frames * hop, seed=cfg.seed,
                                       rank=self.ctx.rank, world=self.ctx.world)
        self.step = 0

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.conds is None:
            return self.batches.next(self.step + 1), None
        idx = self.order.next_indices()
        wave = torch.stack([torch.as_tensor(self.clips[i]).float() for i in idx])
        return wave, torch.stack([torch.as_tensor(self.conds[i]).float() for i in idx])

    def train_step(self) -> dict[str, float]:
        wave, cond = self._batch()
        wave = wave.to(self.device)
        if wave.dim() != 3 or wave.shape[1] != 2:
            raise ValueError(f"Mono2Stereo training needs stereo clips [2, T], got a batch of {tuple(wave.shape)}")
        with torch.no_grad():
            mono, target = mono_and_channels(wave, self.mel_fn, self.log)
            weight = log_expand(mono, self.log)
            weight = weight / weight.mean(dim=(1, 2), keepdim=True).clamp_min(1e-12)   # B M F
        pred = self.step_model(mono) if cond is None else self.step_model(mono, cond.to(self.device))   # B 2 M F
        loss = ((pred - target).abs() * weight[:, None]).mean()
        lr = self.opt.param_groups[0]["lr"]   # this step's rate (the scheduler moves it on below)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.step += 1
        return {"loss": all_reduce_mean(loss.detach(), self.ctx).item(), "lr": lr}

    def state_dict(self) -> dict:
        data = self.batches if self.conds is None else self.order
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "sched": self.sched.state_dict(),
                "data": data.state_dict(), "rng": rng_state(), "trainer_step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        (self.batches if self.conds is None else self.order).load_state_dict(state["data"])
        set_rng_state(state["rng"])
        self.step = int(state["trainer_step"])

    def export_state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}
