"""KlingFoleyDiT: the multimodal flow transformer (paper §3.2–4.4, Alg. 1).

Shapes: B batch, La audio tokens, Lv visual tokens, Ls sync tokens, Lt text tokens, D width,
C latent channels, Dv/Ds/Dt encoder widths.

Per generation `prepare(...)` does every step-invariant thing once (input projections of the
conditions, learned empties for missing modalities, sync upsampling to the audio rate = align
feature a_f, pooled global feature g_f incl. duration embeddings, RoPE tables). Per step
`velocity(x, t, prepared)` runs the audio input projection, N1 joint blocks, N2 audio-only blocks
and the final layer.

Padded batches (training on clips of different durations): `prepare` takes per-stream masks
(True = real token, real tokens first) for audio, visual, sync and text. With them every clip of
the batch computes what it computes alone — attention hides padded keys, pooling skips them, the
time convs read zeros past a clip's end, the align feature and the visual RoPE scale follow each
clip's own lengths. Without masks (inference, MMAudio's networks) the unmasked path runs unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import SeqConfig
from .blocks import FinalLayer, JointBlock, StreamBlock
from .config import ModelConfig
from .embeddings import DurationEmbedder, InputProjection, SwiGLU, TimestepEmbedder
from .rope import aligned_rotations, per_clip_visual_rotations
from .sync import align_feature, segment_aligned

__all__ = ["KlingFoleyDiT", "Prepared", "segment_aligned"]


@dataclass
class Prepared:
    """Step-invariant conditioning for one generation (batch B)."""

    visual: torch.Tensor                 # B Lv D  projected visual tokens
    text: torch.Tensor                   # B Lt D  projected text tokens
    text_mask: torch.Tensor | None       # B Lt bool (True = real token); None = attend to all
    align: torch.Tensor                  # B La D  a_f: sync upsampled to the audio rate
    global_cond: torch.Tensor            # B D     g_f after the global MLP (t embedding added per step)
    rot_audio: torch.Tensor              # La P 2 2
    rot_visual: torch.Tensor             # Lv P 2 2, or B Lv P 2 2 per clip of a padded batch
    text_maskable: bool = False          # the config masks text padding (cat may pad text)
    audio_mask: torch.Tensor | None = None   # B La bool (True = real token); None = all real
    visual_mask: torch.Tensor | None = None  # B Lv bool

    @property
    def batch_size(self) -> int:
        return self.align.shape[0]

    @property
    def audio_len(self) -> int:
        return self.align.shape[1]

    @classmethod
    def cat(cls, items: list["Prepared"]) -> "Prepared":
        """Concatenate along the batch (e.g. [cond, uncond] for one CFG forward).

        Text of different lengths is right-padded with masked positions, which needs the text
        mask (Kling-Foley configs); MMAudio-style configs always have equal text lengths.
        """
        if not items:
            raise ValueError("Prepared.cat needs at least one item")
        first = items[0]
        for p in items[1:]:
            if p.audio_len != first.audio_len or p.visual.shape[1] != first.visual.shape[1]:
                raise ValueError(f"Prepared.cat: sequence lengths differ (audio {p.audio_len} vs "
                                 f"{first.audio_len}, visual {p.visual.shape[1]} vs {first.visual.shape[1]}); "
                                 "prepare every branch with the same SeqConfig")
        lt = max(p.text.shape[1] for p in items)
        ragged = any(p.text.shape[1] != lt for p in items)
        uses_mask = any(p.text_mask is not None for p in items) or (ragged and first.text_maskable)
        if ragged and not uses_mask:
            raise ValueError("Prepared.cat: text lengths differ but these items carry no text mask; "
                             "pad the text features to one length before prepare()")
        texts, masks = [], []
        for p in items:
            pad = lt - p.text.shape[1]
            texts.append(F.pad(p.text, (0, 0, 0, pad)))
            if uses_mask:
                m = p.text_mask if p.text_mask is not None else torch.ones(
                    p.text.shape[:2], dtype=torch.bool, device=p.text.device)
                masks.append(F.pad(m, (0, pad), value=False))
        per_clip = any(p.rot_visual.ndim == 5 for p in items)
        rot_v = torch.cat([p.rot_visual if p.rot_visual.ndim == 5 else
                           p.rot_visual.expand(p.batch_size, *p.rot_visual.shape)
                           for p in items]) if per_clip else first.rot_visual
        return cls(visual=torch.cat([p.visual for p in items]), text=torch.cat(texts),
                   text_mask=torch.cat(masks) if uses_mask else None,
                   align=torch.cat([p.align for p in items]),
                   global_cond=torch.cat([p.global_cond for p in items]),
                   rot_audio=first.rot_audio, rot_visual=rot_v, text_maskable=first.text_maskable,
                   audio_mask=_cat_masks([p.audio_mask for p in items], [(p.batch_size, p.audio_len) for p in items]),
                   visual_mask=_cat_masks([p.visual_mask for p in items],
                                          [tuple(p.visual.shape[:2]) for p in items]))

    def to(self, *args, **kwargs) -> "Prepared":
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in moved.items():
            if isinstance(v, torch.Tensor) and k not in ("text_mask", "audio_mask", "visual_mask",
                                                        "rot_audio", "rot_visual"):
                moved[k] = v.to(*args, **kwargs)
        return Prepared(**moved)


def _cat_masks(masks: list[torch.Tensor | None], shapes: list[tuple[int, int]]) -> torch.Tensor | None:
    """Per-item masks (None = all real) -> one [sum B, L] mask, or None when no item has padding."""
    if all(m is None for m in masks):
        return None
    dev = next(m for m in masks if m is not None).device
    return torch.cat([m if m is not None else torch.ones(shape, dtype=torch.bool, device=dev)
                      for m, shape in zip(masks, shapes)])


def _padding_mask(mask: torch.Tensor | None, batch: int, length: int, name: str, device) -> torch.Tensor | None:
    """A right-padding mask [B, L] (True = real) checked and on `device`; None when nothing is padded."""
    if mask is None:
        return None
    mask = mask.to(device=device, dtype=torch.bool)
    if mask.shape != (batch, length):
        raise ValueError(f"prepare: {name} must be [B={batch}, {length}] for this SeqConfig, got {tuple(mask.shape)}")
    lens = mask.sum(1)
    if bool((lens == 0).any()) or not torch.equal(mask, torch.arange(length, device=device)[None] < lens[:, None]):
        raise ValueError(f"prepare: {name} must mark each clip's real tokens first (True) and its padding "
                         "after them (False), with at least one real token per clip")
    return None if bool(mask.all()) else mask


def _call(block: nn.Module, *args):
    return block(*args)


def _as_batch(value, batch: int, device) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32, device=device)
    return t.expand(batch) if t.ndim == 0 else t.reshape(batch)


class KlingFoleyDiT(nn.Module):
    """(latent x [B, La, C], flow time t [B], conditions) -> velocity [B, La, C]."""

    def __init__(self, cfg: ModelConfig, device=None, dtype=None):
        super().__init__()
        self.cfg = cfg
        f = dict(device=device, dtype=dtype)
        d, h = cfg.hidden_dim, cfg.mlp_hidden
        lin_act = cfg.input_activation if cfg.linear_proj_activation else None
        self.audio_in = InputProjection(cfg.latent_dim, d, h, in_kernel=cfg.audio_in_kernel,
                                        mlp_kernel=cfg.audio_in_kernel, activation=cfg.input_activation, **f)
        self.visual_in = InputProjection(cfg.visual_dim, d, h, in_kernel=1, mlp_kernel=cfg.visual_kernel,
                                         activation=lin_act, **f)
        self.sync_in = InputProjection(cfg.sync_dim, d, h, in_kernel=cfg.sync_in_kernel,
                                       mlp_kernel=cfg.visual_kernel, activation=cfg.input_activation, **f)
        self.text_in = InputProjection(cfg.text_dim, d, h, in_kernel=1, mlp_kernel=cfg.text_kernel,
                                       activation=lin_act, **f)
        # per-token-within-segment position of a Synchformer token (segments overlap by half)
        self.sync_pos_emb = nn.Parameter(torch.zeros(1, 1, cfg.sync_tokens_per_segment, cfg.sync_dim, **f))
        # learned empties e_v (visual, sync) and e_t (text), in the encoders' feature space
        self.empty_visual = nn.Parameter(torch.zeros(1, cfg.visual_dim, **f))
        self.empty_sync = nn.Parameter(torch.zeros(1, cfg.sync_dim, **f))
        self.empty_text = nn.Parameter(torch.zeros(cfg.empty_text_len, cfg.text_dim, **f))
        self.visual_pool_proj = nn.Linear(d, d, **f)
        self.text_pool_proj = nn.Linear(d, d, **f)
        if cfg.duration_embedding:
            self.seconds_start = DurationEmbedder(d, cfg.max_seconds, **f)
            self.seconds_total = DurationEmbedder(d, cfg.max_seconds, **f)
        self.global_mlp = SwiGLU(d, h, 1, **f)                          # the shallow fusion MLP
        self.t_embed = TimestepEmbedder(d, cfg.t_freq_dim, cfg.t_max_period, **f)
        self.joint_blocks = nn.ModuleList([
            JointBlock(d, cfg.num_heads, h, audio_kernel=cfg.audio_kernel, visual_kernel=cfg.visual_kernel,
                       text_kernel=cfg.text_kernel,
                       pre_only=cfg.pre_only_last_joint and i == cfg.num_joint - 1, **f)
            for i in range(cfg.num_joint)])
        self.single_blocks = nn.ModuleList([
            StreamBlock(d, cfg.num_heads, h, cfg.audio_kernel, **f) for _ in range(cfg.num_single)])
        self.final = FinalLayer(d, cfg.latent_dim, cfg.final_kernel, **f)
        # training option, not architecture: recompute each block's activations in backward
        self.activation_checkpointing = False
        if device is None or torch.device(device).type != "meta":
            self.init_weights()

    # ---------------------------------------------------------------- init
    def init_weights(self) -> None:
        """Xavier linears/convs with zero bias; adaLN-Zero (all modulations and the output conv
        start at zero, so a fresh model predicts zero velocity); small random empties."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if hasattr(m, "mod"):
                nn.init.zeros_(m.mod.linear.weight)
                nn.init.zeros_(m.mod.linear.bias)
        nn.init.zeros_(self.final.conv.weight)
        nn.init.zeros_(self.final.conv.bias)
        for p in (self.empty_visual, self.empty_sync, self.empty_text, self.sync_pos_emb):
            nn.init.normal_(p, std=0.02)
        if self.cfg.duration_embedding:
            nn.init.normal_(self.seconds_start.table.weight, std=0.02)
            nn.init.normal_(self.seconds_total.table.weight, std=0.02)

    # ---------------------------------------------------------------- per generation
    def _param(self) -> torch.Tensor:
        return self.audio_in.proj.weight

    def prepare(self, *, seq: SeqConfig, visual: torch.Tensor | None = None, sync: torch.Tensor | None = None,
                text: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                visual_mask: torch.Tensor | None = None, sync_mask: torch.Tensor | None = None,
                audio_mask: torch.Tensor | None = None,
                seconds_start=0.0, seconds_total=None, batch_size: int | None = None) -> Prepared:
        """Conditions -> Prepared. Missing visual/sync/text use the learned empties.

        visual [B, Lv, Dv], sync [B, Ls, Ds], text [B, Lt, Dt] with text_mask [B, Lt] (True = real
        token); seconds_* are floats or [B] tensors (seconds_total defaults to seq.duration).
        A padded batch (clips shorter than `seq`) passes visual_mask [B, Lv], sync_mask [B, Ls] and
        audio_mask [B, La] (True = real token, real tokens first; they apply to the learned empties
        too); each clip then sees exactly what it would see alone at its own duration.
        """
        cfg, w = self.cfg, self._param()
        dev, dt = w.device, w.dtype
        la, lv, ls = seq.latent_len, seq.visual_len, seq.sync_len
        given = [x.shape[0] for x in (visual, sync, text) if x is not None]
        b = batch_size if batch_size is not None else (given[0] if given else 1)
        if any(g != b for g in given):
            raise ValueError(f"prepare: batch sizes differ: visual/sync/text have {given}, batch_size={b}")
        self._check(visual, lv, cfg.visual_dim, "visual", "visual_len")
        self._check(sync, ls, cfg.sync_dim, "sync", "sync_len")
        if ls % cfg.sync_tokens_per_segment:
            raise ValueError(f"prepare: sync length {ls} is not a multiple of {cfg.sync_tokens_per_segment} "
                             "tokens per segment")
        visual = self.empty_visual.expand(b, lv, -1) if visual is None else visual
        sync = self.empty_sync.expand(b, ls, -1) if sync is None else sync
        if text is None:
            text, text_mask = self.empty_text.expand(b, -1, -1), None
        elif text.ndim != 3 or text.shape[-1] != cfg.text_dim or text.shape[1] > cfg.text_len:
            raise ValueError(f"prepare: text must be [B, Lt<={cfg.text_len}, {cfg.text_dim}], got {tuple(text.shape)}")
        if text_mask is not None:
            text_mask = text_mask.to(device=dev, dtype=torch.bool)
            if text_mask.shape != text.shape[:2]:
                raise ValueError(f"prepare: text_mask {tuple(text_mask.shape)} does not match text {tuple(text.shape[:2])}")
            if not cfg.text_attention_mask:
                raise ValueError(f"prepare: config {cfg.name!r} has no text padding mask (MMAudio-style: "
                                 "text is always the full padded sequence); pass text_mask=None")
            if bool(text_mask.all()):
                text_mask = None  # nothing to mask: take the unmasked attention path
        am = _padding_mask(audio_mask, b, la, "audio_mask", dev)
        vm = _padding_mask(visual_mask, b, lv, "visual_mask", dev)
        sm = _padding_mask(sync_mask, b, ls, "sync_mask", dev)
        if sm is not None and bool((sm.sum(1) % cfg.sync_tokens_per_segment).any()):
            raise ValueError(f"prepare: sync_mask must keep whole segments ({cfg.sync_tokens_per_segment} "
                             f"tokens each), got real lengths {sm.sum(1).tolist()}")
        audio_lens = None if am is None else am.sum(1).tolist()

        visual, sync, text = (x.to(device=dev, dtype=dt) for x in (visual, sync, text))
        sync = (sync.unflatten(1, (-1, cfg.sync_tokens_per_segment)) + self.sync_pos_emb).flatten(1, 2)  # B Ls Ds
        v = self.visual_in(visual, vm)                                   # B Lv D
        s = self.sync_in(sync, sm)                                       # B Ls D
        tx = self.text_in(text, text_mask)                               # B Lt D
        align = align_feature(s, seq, cfg.sync_upsample, sm, audio_lens)  # B La D
        if text_mask is None:
            text_pooled = tx.mean(dim=1)                                 # B D
        else:
            m = text_mask[..., None].to(tx.dtype)                        # B Lt 1
            text_pooled = (tx * m).sum(1) / m.sum(1).clamp_min(1)        # B D
        if vm is None:
            visual_pooled = v.mean(dim=1)                                # B D
        else:
            mv = vm[..., None].to(v.dtype)                               # B Lv 1
            visual_pooled = (v * mv).sum(1) / mv.sum(1)                  # B D
        g = self.visual_pool_proj(visual_pooled) + self.text_pool_proj(text_pooled)  # B D
        if cfg.duration_embedding:
            total = seq.duration if seconds_total is None else seconds_total
            g = g + self.seconds_start(_as_batch(seconds_start, b, dev)) \
                  + self.seconds_total(_as_batch(total, b, dev))         # B D
        g = self.global_mlp(g)                                           # B D
        rot_a, rot_v = aligned_rotations(la, lv, cfg.head_dim, theta=cfg.rope_theta, device=dev)
        if am is not None or vm is not None:  # each clip keeps its own frame-to-audio scale
            rot_v = per_clip_visual_rotations(lv, audio_lens or [la] * b,
                                              [lv] * b if vm is None else vm.sum(1).tolist(),
                                              cfg.head_dim, theta=cfg.rope_theta, device=dev)  # B Lv P 2 2
        return Prepared(visual=v, text=tx, text_mask=text_mask, align=align, global_cond=g,
                        rot_audio=rot_a, rot_visual=rot_v, text_maskable=cfg.text_attention_mask,
                        audio_mask=am, visual_mask=vm)

    @staticmethod
    def _check(x, length: int, dim: int, name: str, prop: str) -> None:
        if x is not None and (x.ndim != 3 or x.shape[1] != length or x.shape[2] != dim):
            raise ValueError(f"prepare: {name} must be [B, {length}, {dim}] (SeqConfig.{prop} for this duration), "
                             f"got {tuple(x.shape)}")

    # ---------------------------------------------------------------- per step
    def velocity(self, x: torch.Tensor, t, prepared: Prepared) -> torch.Tensor:
        """x [B, La, C] (normalised latent), t [B] or scalar in [0, 1] -> velocity [B, La, C].

        Padding (the masks given to `prepare`) stays out of every real token.
        """
        b, la = x.shape[0], x.shape[1]
        if la != prepared.audio_len or b != prepared.batch_size or x.shape[2] != self.cfg.latent_dim:
            raise ValueError(f"velocity: x is {tuple(x.shape)} but prepared conditions expect "
                             f"[{prepared.batch_size}, {prepared.audio_len}, {self.cfg.latent_dim}]")
        t = _as_batch(t, b, x.device) if not torch.is_tensor(t) or t.ndim == 0 else t
        dt = self._param().dtype
        am, vm, tm = prepared.audio_mask, prepared.visual_mask, prepared.text_mask
        a = self.audio_in(x.to(dt), am)                                  # B La D
        c_global = (self.t_embed(t) + prepared.global_cond)[:, None]     # B 1 D
        c_audio = c_global + prepared.align                              # B La D
        v, tx = prepared.visual, prepared.text
        joint_mask = None
        if am is not None or vm is not None or tm is not None:
            def real(m, like):
                return m if m is not None else torch.ones(like.shape[:2], dtype=torch.bool, device=x.device)
            joint_mask = torch.cat([real(am, a), real(vm, v), real(tm, tx)], 1)  # B S
        run = self._checkpointed if self.activation_checkpointing and torch.is_grad_enabled() else _call
        for block in self.joint_blocks:
            a, v, tx = run(block, a, v, tx, c_audio, c_global, prepared.rot_audio, prepared.rot_visual,
                           joint_mask, (am, vm, tm))
        for block in self.single_blocks:
            a = run(block, a, c_audio, prepared.rot_audio, am)           # B La D
        c_final = c_audio if self.cfg.final_cond == "extended" else c_global
        return self.final(a, c_final, am)                                # B La C

    @staticmethod
    def _checkpointed(block: nn.Module, *args):
        return checkpoint(block, *args, use_reentrant=False)

    def forward(self, x: torch.Tensor, t, **conditions) -> torch.Tensor:
        """One full pass: prepare(**conditions) then velocity (training convenience)."""
        return self.velocity(x, t, self.prepare(**conditions))
