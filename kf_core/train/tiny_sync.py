"""kf-tiny's sync encoder, trained by its own objective: which 2-frame tubelet holds a sound onset.

Why: with seeded random weights the tiny Synchformer's tokens carry almost no timing (a ridge probe
of onset presence from them reached AUC 0.6 on held-out clips), and a DiT trained on them ignored
the video. Here the Synchformer (same architecture and input size as shipped) plus a linear
probe head learn, per output token, whether a visible impact happens in that token's two frames
(soft target: Gaussian of σ 30 ms around each onset, binary cross-entropy). The head is
discarded; the encoder is frozen afterwards like every other encoder at generation.

Shape legend: N clips, S segments, T tokens per segment (8), D width, Ts frames at 25 fps.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as Fn
from torch import nn

__all__ = ["sync_item", "token_targets", "train_sync_encoder"]

SYNC_CLIP_S = 2.56  # 64 frames at 25 fps = 7 segments of 16 with stride 8
SIGMA_S = 0.03


def sync_item(index: int, *, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training clip `index` (its own seed range) -> (uint8 frames [64,3,size,size] at 25 fps, onset times [K])."""
    from ..config import SeqConfig
    from ..data.dataset import split_seed
    from ..data.synthetic import make_clip
    from ..io import frames_from_images, streams_for
    c = make_clip(split_seed(700_000_000 + index, seed, "train"), duration=SYNC_CLIP_S)
    spec = streams_for(SeqConfig(SYNC_CLIP_S), sync_size=size)["sync"]
    frames = frames_from_images(torch.from_numpy(c.frames), c.fps, spec.fps, size=spec.size, mode=spec.mode,
                                count=spec.count, duration=SYNC_CLIP_S, min_count=spec.min_count)
    return frames, torch.as_tensor(c.onset_times, dtype=torch.float32)


def token_targets(onsets: torch.Tensor, segments: int, *, stride: int = 8, tubelet: int = 2,
                  tokens: int = 8, fps: float = 25.0) -> torch.Tensor:
    """Onset times [K] -> soft targets [S,T]: token t of segment s spans frames s·stride + t·tubelet (+tubelet)."""
    start = torch.arange(segments)[:, None] * stride + torch.arange(tokens)[None, :] * tubelet   # S T
    centre = (start.float() + tubelet / 2) / fps                                               # S T
    if onsets.numel() == 0:
        return torch.zeros(segments, tokens)
    d = centre[..., None] - onsets[None, None, :]                                               # S T K
    return torch.exp(-0.5 * (d / SIGMA_S) ** 2).amax(-1)


def train_sync_encoder(model: nn.Module, frames: torch.Tensor, onsets: list[torch.Tensor], *, steps: int,
                       batch_size: int, seed: int, lr: float = 3e-4, warmup: int = 200, log_every: int = 10,
                       device: str | torch.device = "cpu") -> list[dict]:
    """Synchformer + clips (uint8 frames [N,Ts,3,S,S], onset times) -> trained in place; logged rows.

    The learning rate matters: at 2e-3 (batch 24, 1500 steps) the training loss never fell and a
    held-out onset AUC stayed at 0.57; at 3e-4 with a 200-step warm-up (batch 64) it reached
    0.84 after 1200 steps and 0.87 after 3000 (2000 training clips, 256 held-out, seed 0).
    """
    from ..encoders import sync_frames_from_uint8
    cfg = model.cfg
    n, ts = frames.shape[:2]
    segs = cfg.segments(ts)
    targets = torch.stack([token_targets(o, segs, stride=cfg.segment_stride, tubelet=cfg.tubelet,
                                         tokens=cfg.time_steps) for o in onsets])            # N S T
    device = torch.device(device)
    torch.manual_seed(seed)
    model.to(device)
    head = nn.Linear(cfg.width, 1).to(device)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    # positives are rare (~10 % of tokens): weight them up so the head does not learn "never"
    pos_weight = ((1 - targets.mean()) / targets.mean().clamp_min(1e-3)).clamp(1.0, 20.0).to(device)
    g = torch.Generator().manual_seed(seed)
    model.train()
    rows = []
    for step in range(1, steps + 1):
        clip = torch.randint(0, n, (batch_size,), generator=g)
        seg = torch.randint(0, segs, (batch_size,), generator=g)
        start = seg * cfg.segment_stride
        x = torch.stack([frames[c, s:s + cfg.segment_frames] for c, s in zip(clip.tolist(), start.tolist())])
        x = sync_frames_from_uint8(x.to(device))[:, None]                        # B 1 F 3 S S
        logits = head(model.encode_segments(x))[:, 0, :, 0]                      # B T
        y = targets[clip, seg].to(device)                                         # B T
        loss = Fn.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                hit = ((logits > 0) == (y > 0.5)).float().mean().item()
            rows.append({"step": step, "loss": loss.item(), "token_acc": hit, "lr": opt.param_groups[0]["lr"]})
    model.to("cpu").eval()
    return rows
