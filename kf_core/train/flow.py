"""Flow-matching trainer for the DiT (paper Alg. 1, eq. 1, eq. 8).

Per step: x1 ~ N(mean, std²) from the stored codec posterior, x0 ~ N(0, I), t ~ logit-normal,
x_t = t·x1 + (1 − t)·x0, target u = x1 − x0, loss = masked MSE(v_θ(x_t, t, C), u) over real
audio tokens. Video (visual + sync together) and text are dropped to the model's learned
empties independently with their configured rates; a clip without a modality always uses them.

Across ranks the run is the same run: `batch_size` is the global batch (each rank takes its slice
of the same global order), every clip's random draws come from (seed, step, its place in the
global batch), and the loss is normalised by the global count of real tokens. So N ranks (DDP or
FSDP) follow the single-process loss curve up to float rounding, and a checkpoint resumes exactly
on another number of ranks.

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

from torch.distributed.tensor import DTensor

from .checkpoint import rng_state, set_rng_state
from .data import BatchOrder, FlowBatch, LengthBucketedOrder, collate
from .distributed import (DistContext, all_reduce_mean, all_reduce_sum, full_tensor, load_model_state,
                          load_optimizer_state, model_state, optimizer_state, wrap)
from .ema import EMA
from .features import FeatureShards
from .schedules import InverseLR, InverseLRConfig

__all__ = ["FlowTrainConfig", "FlowObjective", "FlowTrainer", "logit_normal"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlowTrainConfig:
    """Optimisation and conditioning-dropout settings of the flow trainer."""

    batch_size: int = 8      # global: split evenly across ranks
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
    amp: bool = True         # bf16 autocast on CUDA (ignored on CPU; FSDP uses its bf16 policy instead)
    activation_checkpointing: bool = False  # recompute each block's activations in backward
    bucket_pool: int = 0     # > 0: batches of similar lengths from pools of this many batches

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.lr <= 0:
            raise ValueError(f"batch_size and lr must be positive, got {self.batch_size}, {self.lr}")
        for name in ("p_drop_video", "p_drop_text"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if self.grad_clip < 0 or self.t_std <= 0:
            raise ValueError(f"grad_clip must be >= 0 and t_std > 0, got {self.grad_clip}, {self.t_std}")
        if self.bucket_pool < 0:
            raise ValueError(f"bucket_pool must be >= 0, got {self.bucket_pool}")

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


def sample_seed(seed: int, step: int, position: int) -> int:
    """A 63-bit seed unique to (seed, step, position of the clip in the global batch)."""
    digest = hashlib.sha256(f"kf-flow/{seed}/{step}/{position}".encode()).digest()
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
                use_video: torch.Tensor, use_text: torch.Tensor, norm: torch.Tensor | None = None) -> torch.Tensor:
        """-> squared error summed over real tokens / `norm` (default: this batch's real values)."""
        prepared, order = self.prepare(batch, use_video, use_text)
        x0, x1, t, mask = x0[order], x1[order], t[order], batch.audio_mask[order]
        xt = t[:, None, None] * x1 + (1 - t[:, None, None]) * x0       # B La C
        v = self.model.velocity(xt, t, prepared)                          # B La C
        err = (v.float() - (x1 - x0)).square() * mask[:, :, None]      # B La C
        loss = err.sum() / (norm if norm is not None else (mask.sum() * x1.shape[-1]).clamp_min(1))
        # every parameter joins the graph (with zero gradient when unused, e.g. the empties when
        # nothing was dropped), so DDP ranks reduce identically shaped gradients every step. Under
        # FSDP the blocks' parameters are resharded DTensors here; they are always used anyway.
        tie = [p.flatten()[0] for p in self.model.parameters() if p.requires_grad and not isinstance(p, DTensor)]
        return loss + 0.0 * sum(tie) if tie else loss


class FlowTrainer:
    """Trains `model` on a dataset of FeatureRecords; state covers everything needed to resume exactly."""

    def __init__(self, model: nn.Module, cfg: FlowTrainConfig, dataset, *, codec: dict,
                 ctx: DistContext | None = None) -> None:
        self.cfg = cfg
        self.ctx = ctx or DistContext()
        if cfg.batch_size % self.ctx.world:
            raise ValueError(f"the global batch of {cfg.batch_size} clips does not split evenly over "
                             f"{self.ctx.world} ranks; give --batch-size a multiple of {self.ctx.world}")
        self.per_rank = cfg.batch_size // self.ctx.world
        if cfg.activation_checkpointing:
            model.activation_checkpointing = True  # KlingFoleyDiT recomputes its blocks in backward
        self.model = model.to(self.ctx.device)
        self.dataset = dataset
        self.codec = codec
        self.objective = wrap(FlowObjective(self.model), self.ctx)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                           weight_decay=cfg.weight_decay)
        self.scheduler = InverseLR(self.optimizer, cfg.schedule)
        self.ema = EMA(self.model, cfg.ema_decay)
        # the trainer's own RNG on CPU (identical draws on every device type), reseeded per clip
        # from (seed, step, place in the global batch), so a resumed run draws exactly what it
        # would have drawn, on any number of ranks
        self.generator = torch.Generator()
        where = dict(seed=cfg.seed, rank=self.ctx.rank, world=self.ctx.world)
        if cfg.bucket_pool:
            durations = (dataset.durations if isinstance(dataset, FeatureShards)  # from the headers
                         else [r.duration for r in dataset])
            self.order = LengthBucketedOrder(durations, self.per_rank, pool=cfg.bucket_pool, **where)
        else:
            self.order = BatchOrder(len(dataset), self.per_rank, **where)
        self.step = 0

    # --- one step -----------------------------------------------------------------------------
    def draw(self, batch: FlowBatch) -> dict[str, torch.Tensor]:
        """The step's random variables; clip i's from (seed, step, its place in the global batch), over
        its own real tokens (zeros in the padding), so neither the rank split nor the padding matters."""
        g, cfg, b = self.generator, self.cfg, batch.size
        la, c = batch.latent_mean.shape[1:]
        eps, x0 = torch.zeros(b, la, c), torch.zeros(b, la, c)
        t, keep_v, keep_t = torch.empty(b), torch.empty(b, dtype=torch.bool), torch.empty(b, dtype=torch.bool)
        for i, n in enumerate(batch.audio_mask.sum(1).tolist()):
            g.manual_seed(sample_seed(cfg.seed, self.step, self.ctx.rank * self.per_rank + i))
            eps[i, :n] = torch.randn(n, c, generator=g)
            x0[i, :n] = torch.randn(n, c, generator=g)
            t[i] = logit_normal(1, g, cfg.t_mean, cfg.t_std)[0]
            keep_v[i] = bool(torch.rand(1, generator=g) >= cfg.p_drop_video)
            keep_t[i] = bool(torch.rand(1, generator=g) >= cfg.p_drop_text)
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
        # normalise by the global count of real values, so the ranks' mean loss (and gradient) is
        # the token-weighted mean of the whole global batch
        norm = all_reduce_sum((batch.audio_mask.sum() * x1.shape[-1]).float(), self.ctx) / self.ctx.world
        amp = self.cfg.amp and dev.type == "cuda" and not self.ctx.fsdp
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
            loss = self.objective(batch, r["x0"].to(dev), x1, r["t"].to(dev),
                                  r["use_video"].to(dev), r["use_text"].to(dev), norm=norm.clamp_min(1))
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
        return {"loss": loss_all.item(), "lr": lr, "grad_norm": float(full_tensor(grad_norm)),
                "samples_per_s": batch.size * self.ctx.world / dt,
                "video_frac": r["use_video"].float().mean().item(),
                "text_frac": r["use_text"].float().mean().item()}

    # --- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything a resume needs: parameter-named tensors, this rank's shards under FSDP
        (collective then: call on every rank)."""
        return {"model": model_state(self.model, self.ctx, sharded=True), "ema": self.ema.state_dict(),
                "optimizer": optimizer_state(self.model, self.optimizer, self.ctx, sharded=True),
                "scheduler": self.scheduler.state_dict(), "data": self.order.state_dict(),
                "rng": rng_state(self.generator), "trainer_step": self.step}

    def export_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """Inference weights: {"_ema": averaged, "": raw} whole state dicts of the bare model
        (collective under FSDP; complete on rank 0)."""
        raw = model_state(self.model, self.ctx)
        return {"_ema": self.ema.weights_for(self.model), "": raw}

    def load_state_dict(self, state: dict) -> None:
        load_model_state(self.model, state["model"], self.ctx)
        self.ema.load_state_dict(state["ema"])
        load_optimizer_state(self.model, self.optimizer, state["optimizer"], self.ctx)
        self.scheduler.load_state_dict(state["scheduler"])
        self.order.load_state_dict(state["data"])
        set_rng_state(state["rng"], self.generator)
        self.step = int(state["trainer_step"])
