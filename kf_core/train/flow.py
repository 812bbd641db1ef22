"""Flow-matching trainer for the DiT (paper Alg. 1, eq. 1, eq. 8).

Per step: x1 ~ N(mean, std²) from the stored codec posterior, x0 ~ N(0, I), t ~ logit-normal,
x_t = t·x1 + (1 − t)·x0, target u = x1 − x0, loss = masked MSE(v_θ(x_t, t, C), u) over real
audio tokens. Video (visual + sync together) and text are dropped to the model's learned
empties independently with their configured rates; a clip without a modality always uses them.

Shape legend: B batch, La audio tokens, C latent channels.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass

import torch
from torch import nn

from .data import BatchOrder, FlowBatch, collate
from .distributed import DistContext, all_reduce_mean, load_model_state, load_optimizer_state, \
    model_state, optimizer_state, wrap
from .ema import EMA
from .schedules import InverseLR, InverseLRConfig

__all__ = ["FlowTrainConfig", "FlowObjective", "FlowTrainer", "logit_normal"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowTrainConfig:
    """Optimisation and conditioning-dropout settings of the flow trainer."""

    batch_size: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-6
    eps: float = 1e-6
    schedule: InverseLRConfig = InverseLRConfig()
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    p_drop_video: float = 0.1
    p_drop_text: float = 0.1
    t_mean: float = 0.0      # logit-normal: t = sigmoid(N(t_mean, t_std²))
    t_std: float = 1.0
    seed: int = 0
    amp: bool = True         # bf16 autocast on CUDA (ignored on CPU)

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.lr <= 0:
            raise ValueError(f"batch_size and lr must be positive, got {self.batch_size}, {self.lr}")
        for name in ("p_drop_video", "p_drop_text"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if self.grad_clip < 0 or self.t_std <= 0:
            raise ValueError(f"grad_clip must be >= 0 and t_std > 0, got {self.grad_clip}, {self.t_std}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FlowTrainConfig":
        d = dict(d)
        d["schedule"] = InverseLRConfig(**d["schedule"])
        d["betas"] = tuple(d["betas"])
        return cls(**d)


def logit_normal(n: int, generator: torch.Generator, mean: float = 0.0, std: float = 1.0) -> torch.Tensor:
    """n flow times t = sigmoid(N(mean, std²)) in (0, 1)."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def step_seed(seed: int, rank: int, step: int) -> int:
    """A 63-bit seed unique to (seed, rank, step)."""
    digest = hashlib.sha256(f"kf-flow/{seed}/{rank}/{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class FlowObjective(nn.Module):
    """(model, batch, x0, x1, t, use_video, use_text) -> masked flow-matching loss (a scalar).

    A module of its own so DDP sees one forward covering `model.prepare` and `model.velocity`.
    Per-sample dropout uses only the documented API: clips are grouped by which modalities they
    use, each group is prepared with None for its missing ones (the model's learned empties), and
    the groups are joined with `Prepared.cat` for one velocity forward. The batch's padding masks
    go to `prepare`, so each clip trains the model it would see alone.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def prepare(self, batch: FlowBatch, use_video: torch.Tensor, use_text: torch.Tensor):
        """-> (Prepared for the reordered batch, order [B]) — clips of one pattern sit together."""
        key = use_video.long() * 2 + use_text.long()
        groups, order = [], []
        for k in sorted(set(key.tolist())):
            idx = torch.nonzero(key == k).flatten()
            v, tx = bool(k & 2), bool(k & 1)
            groups.append(self.model.prepare(
                seq=batch.seq,
                visual=batch.visual[idx] if v else None,
                sync=batch.sync[idx] if v else None,
                text=batch.text[idx] if tx else None,
                text_mask=batch.text_mask[idx] if tx else None,
                visual_mask=batch.visual_mask[idx], sync_mask=batch.sync_mask[idx],
                audio_mask=batch.audio_mask[idx],
                seconds_start=batch.seconds_start[idx],
                seconds_total=batch.seconds_total[idx],
                batch_size=len(idx)))
            order.append(idx)
        prepared = groups[0] if len(groups) == 1 else type(groups[0]).cat(groups)
        return prepared, torch.cat(order)

    def forward(self, batch: FlowBatch, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor,
                use_video: torch.Tensor, use_text: torch.Tensor) -> torch.Tensor:
        prepared, order = self.prepare(batch, use_video, use_text)
        x0, x1, t, mask = x0[order], x1[order], t[order], batch.audio_mask[order]
        xt = t[:, None, None] * x1 + (1 - t[:, None, None]) * x0       # B La C
        v = self.model.velocity(xt, t, prepared)                          # B La C
        err = (v.float() - (x1 - x0)).square() * mask[:, :, None]      # B La C
        loss = err.sum() / (mask.sum() * x1.shape[-1]).clamp_min(1)
        # every parameter joins the graph (with zero gradient when unused, e.g. the empties when
        # nothing was dropped), so DDP/FSDP ranks reduce identically shaped gradients every step
        return loss + 0.0 * sum(p.flatten()[0] for p in self.model.parameters() if p.requires_grad)


class FlowTrainer:
    """Trains `model` on a dataset of FeatureRecords; state covers everything needed to resume exactly."""

    def __init__(self, model: nn.Module, cfg: FlowTrainConfig, dataset, *, codec: dict,
                 ctx: DistContext | None = None) -> None:
        self.cfg = cfg
        self.ctx = ctx or DistContext()
        self.model = model.to(self.ctx.device)
        self.dataset = dataset
        self.codec = codec
        self.objective = wrap(FlowObjective(self.model), self.ctx)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = InverseLR(self.optimizer, cfg.schedule)
        self.ema = EMA(self.model, cfg.ema_decay)
        # the trainer's own RNG on CPU (identical draws on every device type), reseeded from
        # (seed, rank, step) each step so a resumed run draws exactly what it would have drawn
        self.generator = torch.Generator()
        self.order = BatchOrder(len(dataset), cfg.batch_size, seed=cfg.seed,
                                rank=self.ctx.rank, world=self.ctx.world)
        self.step = 0

    # --- one step -----------------------------------------------------------------------------
    def draw(self, batch: FlowBatch) -> dict[str, torch.Tensor]:
        """The step's random variables, drawn in a fixed order from the trainer's generator."""
        g, cfg, b = self.generator, self.cfg, batch.size
        g.manual_seed(step_seed(cfg.seed, self.ctx.rank, self.step))
        eps = torch.randn(batch.latent_mean.shape, generator=g)
        x0 = torch.randn(batch.latent_mean.shape, generator=g)
        t = logit_normal(b, g, cfg.t_mean, cfg.t_std)
        keep_v = torch.rand(b, generator=g) >= cfg.p_drop_video
        keep_t = torch.rand(b, generator=g) >= cfg.p_drop_text
        return {"eps": eps, "x0": x0, "t": t,
                "use_video": keep_v & batch.has_video, "use_text": keep_t & batch.has_text}

    def next_batch(self) -> FlowBatch:
        return collate([self.dataset[i] for i in self.order.next_indices()], self.codec)

    def train_step(self) -> dict[str, float]:
        """One optimiser step -> {loss, lr, grad_norm, samples_per_s} (loss averaged over ranks)."""
        t0 = time.perf_counter()
        self.model.train()
        batch = self.next_batch()
        r = self.draw(batch)
        dev = self.ctx.device
        batch = batch.to(dev)
        x1 = batch.latent_mean + batch.latent_std * r["eps"].to(dev)
        lr = self.optimizer.param_groups[0]["lr"]
        amp = self.cfg.amp and dev.type == "cuda"
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = self.objective(batch, r["x0"].to(dev), x1, r["t"].to(dev),
                                  r["use_video"].to(dev), r["use_text"].to(dev))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"flow loss is {loss.item()} at step {self.step}; lower the learning "
                                     "rate or check the features for NaNs")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model)
        self.step += 1
        loss_all = all_reduce_mean(loss.detach(), self.ctx)
        dt = time.perf_counter() - t0
        return {"loss": loss_all.item(), "lr": lr, "grad_norm": float(grad_norm),
                "samples_per_s": batch.size * self.ctx.world / dt,
                "video_frac": r["use_video"].float().mean().item(),
                "text_frac": r["use_text"].float().mean().item()}

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resume needs (collective under FSDP: call on every rank)."""
        from .checkpoint import rng_state
        return {"model": model_state(self.model, self.ctx), "ema": self.ema.state_dict(),
                "optimizer": optimizer_state(self.model, self.optimizer, self.ctx),
                "scheduler": self.scheduler.state_dict(), "data": self.order.state_dict(),
                "rng": rng_state(self.generator), "trainer_step": self.step}

    def export_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Inference weights: {"_ema": averaged, "": raw} state dicts of the bare model."""
        raw = model_state(self.model, self.ctx)
        return {"_ema": self.ema.weights_for(self.model), "": raw}

    def load_state_dict(self, state: dict) -> None:
        from .checkpoint import set_rng_state
        load_model_state(self.model, state["model"], self.ctx)
        self.ema.load_state_dict(state["ema"])
        load_optimizer_state(self.model, self.optimizer, state["optimizer"], self.ctx)
        self.scheduler.load_state_dict(state["scheduler"])
        self.order.load_state_dict(state["data"])
        set_rng_state(state["rng"], self.generator)
        self.step = int(state["trainer_step"])
