"""kf-tiny's text and image encoders, trained together CLIP-style on the synthetic world's captions.

Why: seeded random tiny T5 / CLIP towers give features in which a prompt cannot pick a sound class
(kf-tiny v1: text-only class accuracy 0.50), and whose image features follow the look of a frame
(its background) more than what is in it. Here the tiny T5 (text) and the tiny CLIP image tower are
trained jointly on (frame, caption) pairs of the world, whose looks vary at random:
- a symmetric InfoNCE loss between the image embedding of one frame of a clip and the masked mean
  of the T5 token features of its caption (through a linear projection), with a learned
  temperature, as CLIP is trained; and
- a multi-label class head on each tower (which of the nine sources the clip holds), so both
  embeddings separate the classes even when a batch holds many captions of one class.
The projection and heads are discarded; the DiT reads the T5 token features and the CLIP image
embeddings exactly as it does for any encoder.

Shape legend: N clips, K frames per clip, B batch, Lt text tokens, D width.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as Fn
from torch import nn

__all__ = ["SemanticItem", "semantic_item", "train_semantic", "text_class_accuracy", "image_class_accuracy"]

FRAMES_PER_CLIP = 4

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SemanticItem:
    frames: torch.Tensor     # K 3 S S uint8 (the visual stream: 8 fps, squashed)
    caption: str
    labels: torch.Tensor     # 9 multi-hot classes


def semantic_item(index: int, *, seed: int, size: int, looks: str = "train", split: str = "train") -> SemanticItem:
    """Clip `index` of the semantic stage's own seed range -> frames, caption, class labels."""
    from ..config import SeqConfig
    from ..data.dataset import split_seed
    from ..data.synthetic import CLASSES, make_clip
    from ..io import frames_from_images, streams_for
    duration = 3.0
    c = make_clip(split_seed(800_000_000 + index, seed, split), duration=duration, looks=looks)
    spec = streams_for(SeqConfig(duration), visual_size=size)["visual"]
    frames = frames_from_images(torch.from_numpy(c.frames), c.fps, spec.fps, size=spec.size, mode=spec.mode,
                                count=spec.count, duration=duration)
    # frames spread over the clip (a concatenation shows its parts in turn)
    pick = torch.linspace(0, frames.shape[0] - 1, FRAMES_PER_CLIP).round().long()
    labels = torch.tensor([float(k in c.labels) for k in CLASSES])
    return SemanticItem(frames[pick].contiguous(), c.caption, labels)


class _Towers(nn.Module):
    """The two encoders plus what only training needs (text projection, class heads, temperature)."""

    def __init__(self, clip, t5, n_classes: int) -> None:
        super().__init__()
        self.clip, self.t5 = clip, t5
        d_img, d_txt = clip.dim, t5.dim
        self.text_proj = nn.Linear(d_txt, d_img)
        self.img_head, self.txt_head = nn.Linear(d_img, n_classes), nn.Linear(d_txt, n_classes)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def image(self, frames_u8: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B,3,S,S] -> unit image embeddings [B,D] (with gradients)."""
        return Fn.normalize(self.clip.visual(self.clip.preprocess(frames_u8)), dim=-1)

    def text(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids, mask [B,Lt] -> (masked-mean token features [B,Dt], unit projection [B,D])."""
        h = self.t5.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state            # B Lt Dt
        m = mask[..., None].to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1)                                            # B Dt
        return pooled, Fn.normalize(self.text_proj(pooled), dim=-1)


def _jitter(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """uint8 [B,3,S,S] -> uint8 with random flips and per-sample colour gains (the world already
    varies looks; this keeps the towers from keying on exact hues)."""
    b = x.shape[0]
    f = x.float()
    gain = torch.empty(b, 3, 1, 1).uniform_(0.75, 1.25, generator=g)
    f = (f * gain).clamp(0, 255)
    flip = torch.rand(b, generator=g) < 0.5
    f = torch.where(flip[:, None, None, None], f.flip(-1), f)
    return f.round().to(torch.uint8)


def train_semantic(clip, t5, items: list[SemanticItem], *, steps: int, batch_size: int, seed: int,
                   lr: float = 1e-3, warmup: int = 100, log_every: int = 10) -> list[dict]:
    """Tiny CLIP image tower + tiny T5 + (frame, caption) items -> both trained in place; logged rows."""
    torch.manual_seed(seed)
    towers = _Towers(clip, t5, items[0].labels.numel())
    towers.train()
    tok = t5.tokenizer([it.caption for it in items], padding="max_length", truncation=True,
                       max_length=t5.max_length, return_tensors="pt")
    ids, mask = tok["input_ids"], tok["attention_mask"].bool()                                    # N Lt
    frames = torch.stack([it.frames for it in items])                                              # N K 3 S S
    labels = torch.stack([it.labels for it in items])                                              # N 9
    opt = torch.optim.AdamW(towers.parameters(), lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    g = torch.Generator().manual_seed(seed)
    rows = []
    n, k = frames.shape[:2]
    for step in range(1, steps + 1):
        idx = torch.randperm(n, generator=g)[:batch_size]
        pick = torch.randint(0, k, (len(idx),), generator=g)
        img = towers.image(_jitter(frames[idx, pick], g))                                           # B D
        pooled, txt = towers.text(ids[idx], mask[idx])                                              # B Dt, B D
        logits = towers.logit_scale.exp().clamp(max=100) * img @ txt.T                              # B B
        # captions of the same clip content are not negatives of each other
        same = (ids[idx][:, None] == ids[idx][None]).all(-1) & ~torch.eye(len(idx), dtype=torch.bool)
        logits = logits.masked_fill(same, -1e4)
        target = torch.arange(len(idx))
        nce = 0.5 * (Fn.cross_entropy(logits, target) + Fn.cross_entropy(logits.T, target))
        y = labels[idx]
        cls = (Fn.binary_cross_entropy_with_logits(towers.img_head(img), y)
               + Fn.binary_cross_entropy_with_logits(towers.txt_head(pooled), y))
        loss = nce + cls
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(towers.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps:
            with torch.no_grad():
                acc = (logits.argmax(1) == target).float().mean().item()
            rows.append({"step": step, "loss": loss.item(), "nce": nce.item(), "cls": cls.item(),
                         "match_acc": acc, "lr": opt.param_groups[0]["lr"]})
            if step % 100 == 0:
                log.info("semantic: step %d / %d, loss %.4f", step, steps, loss.item())
    clip.eval()
    t5.eval()
    clip.probe_head, t5.probe_head = towers.img_head.eval(), towers.txt_head.eval()  # for the accuracies
    return rows


@torch.no_grad()
def text_class_accuracy(t5, items: list[SemanticItem]) -> float:
    """Share of single-class held-out captions whose top class head output is their class."""
    single = [it for it in items if it.labels.sum() == 1]
    feats, mask = t5.encode([it.caption for it in single])
    m = mask[..., None].float()
    pooled = (feats * m).sum(1) / m.sum(1).clamp_min(1)
    pred = t5.probe_head(pooled).argmax(1)
    return float((pred == torch.stack([it.labels for it in single]).argmax(1)).float().mean())


@torch.no_grad()
def image_class_accuracy(clip, items: list[SemanticItem]) -> float:
    """Share of single-class held-out clips whose frames' mean class head output picks their class."""
    single = [it for it in items if it.labels.sum() == 1]
    hits = 0
    for it in single:
        emb = clip.encode_frames(it.frames)                                                        # K D
        hits += int(clip.probe_head(emb).mean(0).argmax() == it.labels.argmax())
    return hits / max(1, len(single))
