"""Training schedules: the InverseLR learning rate (paper eq. 8) and Alg. 2's loss weights.

eq. 8:  LR(t) = max(LR_final, LR_base · (1 + t/γ_inv)^(−p)) · (1 − w^(t+1))
Alg. 2: stage 1 MSE → stage 2 + γ·KL (γ ramps linearly to kl_upper) → stage 3 + δ·(L_g + L_d)
        (δ ramps to gan_upper) → stage 4 all at their upper weights, encoder frozen.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["InverseLRConfig", "inverse_lr", "InverseLR", "VAEStages", "VAELossWeights", "vae_loss_weights"]


@dataclass(frozen=True)
class InverseLRConfig:
    """eq. 8's constants. `warmup` is w ∈ [0, 1) (0 = no warm-up); `lr_final` is absolute."""

    gamma_inv: float = 1e6
    power: float = 0.5
    warmup: float = 0.99
    lr_final: float = 0.0

    def __post_init__(self) -> None:
        if self.gamma_inv <= 0:
            raise ValueError(f"InverseLR gamma_inv must be > 0, got {self.gamma_inv}")
        if self.power < 0:
            raise ValueError(f"InverseLR power p must be >= 0, got {self.power}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"InverseLR warm-up w must be in [0, 1), got {self.warmup}")
        if self.lr_final < 0:
            raise ValueError(f"InverseLR lr_final must be >= 0, got {self.lr_final}")


def inverse_lr(step: int, lr_base: float, cfg: InverseLRConfig) -> float:
    """(step t, LR_base, constants) -> the learning rate of eq. 8 at step t (t counts from 0)."""
    decayed = max(cfg.lr_final, lr_base * (1.0 + step / cfg.gamma_inv) ** (-cfg.power))
    return decayed * (1.0 - cfg.warmup ** (step + 1))


class InverseLR(LRScheduler):
    """eq. 8 as a torch scheduler: each param group's initial lr is its LR_base."""

    def __init__(self, optimizer: Optimizer, cfg: InverseLRConfig, last_epoch: int = -1) -> None:
        self.cfg = cfg
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [inverse_lr(self.last_epoch, base, self.cfg) for base in self.base_lrs]

    def state_dict(self) -> dict:
        # the frozen config is rebuilt from the training config, not pickled
        return {k: v for k, v in super().state_dict().items() if k != "cfg"}


@dataclass(frozen=True)
class VAEStages:
    """Alg. 2's phase boundaries (inclusive last step of each stage) and upper loss weights."""

    stage1_end: int = 1000
    stage2_end: int = 2000
    stage3_end: int = 3000
    kl_upper: float = 1e-4
    gan_upper: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.stage1_end < self.stage2_end < self.stage3_end:
            raise ValueError(
                "VAEStages need 0 <= stage1_end < stage2_end < stage3_end, got "
                f"{self.stage1_end}, {self.stage2_end}, {self.stage3_end}")
        if self.kl_upper < 0 or self.gan_upper < 0:
            raise ValueError(f"kl_upper and gan_upper must be >= 0, got {self.kl_upper}, {self.gan_upper}")


@dataclass(frozen=True)
class VAELossWeights:
    """Weights of one step: L = mse·L_mse + kl·L_kl + gan·(L_g + L_d); stage 4 freezes the encoder."""

    stage: int
    mse: float
    kl: float
    gan: float
    freeze_encoder: bool


def vae_loss_weights(step: int, s: VAEStages) -> VAELossWeights:
    """(training step, stages) -> the loss weights Alg. 2 prescribes at that step."""
    if step <= s.stage1_end:
        return VAELossWeights(1, 1.0, 0.0, 0.0, False)
    if step <= s.stage2_end:
        gamma = s.kl_upper * min(1.0, (step - s.stage1_end) / (s.stage2_end - s.stage1_end))
        return VAELossWeights(2, 1.0, gamma, 0.0, False)
    if step <= s.stage3_end:
        delta = s.gan_upper * min(1.0, (step - s.stage2_end) / (s.stage3_end - s.stage2_end))
        return VAELossWeights(3, 1.0, s.kl_upper, delta, False)
    return VAELossWeights(4, 1.0, s.kl_upper, s.gan_upper, True)
