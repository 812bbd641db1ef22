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
import torch.nn.functional as Fn
from torch import nn

from ..codec.mono2stereo import pan_targets
from .checkpoint import rng_state, set_rng_state
from .clips import ClipBatches

__all__ = ["StereoTrainConfig", "StereoTrainer", "mono_and_channels"]


@dataclass(frozen=True)
class StereoTrainConfig:
    batch_size: int = 8
    segment_frames: int = 64
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.segment_frames <= 0 or self.batch_size <= 0 or self.lr <= 0:
            raise ValueError(f"StereoTrainConfig needs positive batch_size/segment_frames/lr, got {self}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def mono_and_channels(wave: torch.Tensor, mel_fn, log: str = "ln", floor: float = 1e-5):
    """Stereo waves [B, 2, T] -> (mono log-mel [B, M, F] mixed in the linear domain, the channel
    log-mels [B, 2, M, F]) — the Mono2Stereo input and target (`codec.mono2stereo.pan_targets`)."""
    lr = mel_fn(wave.flatten(0, 1)).unflatten(0, (wave.shape[0], 2))   # B 2 M F
    mono, _ = pan_targets(lr[:, 0], lr[:, 1], log, floor)              # B M F
    return mono, lr


class StereoTrainer:
    """Trains `model(mono_logmel [B,M,F], visual=None) -> [B,2,M,F]` on stereo clips ([2, T] items)."""

    def __init__(self, model: nn.Module, cfg: StereoTrainConfig, clips, mel_fn, *, log: str = "ln",
                 hop: int = 512, device="cpu") -> None:
        self.cfg, self.mel_fn, self.log, self.device = cfg, mel_fn, log, torch.device(device)
        self.model = model.to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.batches = ClipBatches(clips, cfg.batch_size, cfg.segment_frames * hop, seed=cfg.seed)
        self.step = 0

    def train_step(self) -> dict[str, float]:
        wave = self.batches.next(self.step + 1).to(self.device)
        if wave.dim() != 3 or wave.shape[1] != 2:
            raise ValueError(f"Mono2Stereo training needs stereo clips [2, T], got a batch of {tuple(wave.shape)}")
        with torch.no_grad():
            mono, target = mono_and_channels(wave, self.mel_fn, self.log)
        pred = self.model(mono)                                 # B 2 M F
        loss = Fn.l1_loss(pred, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return {"loss": loss.item(), "lr": self.opt.param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "data": self.batches.state_dict(),
                "rng": rng_state(), "trainer_step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.batches.load_state_dict(state["data"])
        set_rng_state(state["rng"])
        self.step = int(state["trainer_step"])

    def export_state(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}}
