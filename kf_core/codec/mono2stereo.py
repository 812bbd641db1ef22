"""Mono2Stereo (paper §4.6): mono log-mel [B,M,F] (+ visual [B,Lv,Dv]) -> left/right log-mels [B,2,M,F].

The network predicts only a pan p ∈ (0, 1) per mel bin and frame. In the linear mel domain
L = 2p·M and R = 2(1 − p)·M, so (L + R)/2 = M exactly whatever the weights: the module can move
energy between the ears but never create or remove it. The pan is applied in the log domain,
log L = log M + log(2p) (log(2p) = ln 2 + logsigmoid(a), divided by ln 10 for log10 mels), which is
the same identity without a floor clamp that would break it.

Network: a small residual 1D conv stack over frames, channels = mel bins in, `hidden` inside; the
optional video features are projected to `hidden` and brought to the F mel frames, so a source
that moves on screen can pan over time: `cond="visual"` takes per-frame image features [B,Lv,Dv]
(linearly resampled in time), `cond="sync"` takes Synchformer tokens [B,Ls,Ds], each mel frame
reading the tokens that show its instant (`model.sync`; kf-tiny's sync encoder is trained to
say where the sound of each moment comes from). The output conv is zero-initialised: an untrained
module gives p = 0.5 (L = R = M).

Files: the state dict holds `pan_net.*` and a 0-d `log_scale` buffer (1 for ln mels, 1/ln 10 for
log10), plus `frame_seconds` (hop / sample rate) for sync-conditioned modules, so
`load_mono2stereo(path)` rebuilds the module from the file alone.

Shape legend: B batch, M mel bins, F mel frames, D hidden width, Lv visual frames, Dv visual width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as Fn
from torch import nn

from ..loading.state import CheckpointError, load_strict, read_state_dict
from ..model.sync import at_times, sync_slots
from .mel import log_compress, log_expand

__all__ = ["Mono2StereoConfig", "Mono2Stereo", "pan_targets", "stereo_targets", "load_mono2stereo"]


@dataclass(frozen=True)
class Mono2StereoConfig:
    n_mels: int = 128
    visual_dim: int | None = None
    hidden: int = 128
    layers: int = 4
    kernel_size: int = 5
    log: str = "ln"
    cond: str = "visual"                  # what visual_dim features are: "visual" frames or "sync" tokens
    frame_seconds: float = 512 / 44100    # mel hop in seconds (sync features are placed by time)

    def __post_init__(self) -> None:
        if self.cond not in ("visual", "sync"):
            raise ValueError(f"Mono2StereoConfig.cond must be 'visual' or 'sync', got {self.cond!r}")
        if self.n_mels <= 0 or self.hidden <= 0 or self.layers < 0:
            raise ValueError(f"Mono2StereoConfig needs positive n_mels/hidden and layers >= 0, got "
                             f"{self.n_mels}/{self.hidden}/{self.layers}")
        if self.visual_dim is not None and self.visual_dim <= 0:
            raise ValueError(f"Mono2StereoConfig.visual_dim must be positive or None, got {self.visual_dim}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"Mono2StereoConfig.kernel_size must be odd, got {self.kernel_size}")
        if self.log not in ("ln", "log10"):
            raise ValueError(f"Mono2StereoConfig.log must be 'ln' or 'log10', got {self.log!r}")


class _Block(nn.Module):
    """Residual dilated conv block over frames: x + conv(SiLU(GroupNorm(x)))."""

    def __init__(self, hidden: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(math.gcd(8, hidden), hidden)
        self.conv = nn.Conv1d(hidden, hidden, kernel, padding=dilation * (kernel // 2), dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(Fn.silu(self.norm(x)))


def interpolate_span(v: torch.Tensor, total: int, start: int, count: int) -> torch.Tensor:
    """v [B,D,L] -> frames [start, start + count) of its linear resampling to `total` frames: what
    F.interpolate(v, size=total, mode="linear", align_corners=False) gives there (indices in float64,
    so it stays exact for hour-long clips), without making the other frames."""
    length = v.shape[-1]
    dst = torch.arange(start, start + count, dtype=torch.float64, device=v.device)
    src = ((dst + 0.5) * (length / total) - 0.5).clamp_min(0.0)
    i0 = src.long().clamp_max(length - 1)
    i1 = torch.where(i0 < length - 1, i0 + 1, i0)
    lam = (src - i0.to(src.dtype)).to(v.dtype)
    return v[..., i0] * (1.0 - lam) + v[..., i1] * lam                       # B D count


class PanNet(nn.Module):
    """Log-mel [B,M,F] (+ visual [B,Lv,Dv]) -> pan logits [B,M,F]."""

    def __init__(self, cfg: Mono2StereoConfig) -> None:
        super().__init__()
        k = cfg.kernel_size
        self.cfg = cfg
        self.conv_in = nn.Conv1d(cfg.n_mels, cfg.hidden, k, padding=k // 2)
        self.visual_proj = nn.Linear(cfg.visual_dim, cfg.hidden) if cfg.visual_dim else None
        self.blocks = nn.ModuleList(_Block(cfg.hidden, k, 2 ** (i % 4)) for i in range(cfg.layers))
        self.norm_out = nn.GroupNorm(math.gcd(8, cfg.hidden), cfg.hidden)
        self.conv_out = nn.Conv1d(cfg.hidden, cfg.n_mels, 1)
        nn.init.zeros_(self.conv_out.weight)  # untrained module: p = 0.5 everywhere
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, mel: torch.Tensor, visual: torch.Tensor | None,
                span: tuple[int, int] | None = None) -> torch.Tensor:
        # Per-clip centring: the pan should not depend on the overall loudness.
        x = mel - mel.mean(dim=(1, 2), keepdim=True)                           # B M F
        h = self.conv_in(x)                                                    # B D F
        if visual is not None and self.visual_proj is not None:
            start = 0 if span is None else span[0]                             # frames [start, start+F) of a clip
            if self.cfg.cond == "sync":
                frames = torch.arange(start, start + mel.shape[-1], device=mel.device)
                times = (frames + 0.5) * self.cfg.frame_seconds                                       # F
                v = at_times(sync_slots(self.visual_proj(visual)), times).transpose(1, 2)  # B D F
                h = h + v
            else:
                v = self.visual_proj(visual).transpose(1, 2)                   # B D Lv
                if span is None:
                    h = h + Fn.interpolate(v, size=mel.shape[-1], mode="linear", align_corners=False)  # B D F
                else:
                    h = h + interpolate_span(v, span[1], span[0], mel.shape[-1])  # B D F
        for block in self.blocks:
            h = block(h)                                                       # B D F
        return self.conv_out(Fn.silu(self.norm_out(h)))                        # B M F


class Mono2Stereo(nn.Module):
    """Mono log-mel [B,M,F] (+ visual [B,Lv,Dv]) -> [B,2,M,F] with (L + R)/2 = mono in linear mel."""

    def __init__(self, n_mels: int = 128, visual_dim: int | None = None, hidden: int = 128, layers: int = 4,
                 kernel_size: int = 5, log: str = "ln", cond: str = "visual",
                 frame_seconds: float = 512 / 44100) -> None:
        super().__init__()
        self.cfg = Mono2StereoConfig(n_mels, visual_dim, hidden, layers, kernel_size, log, cond, frame_seconds)
        self.pan_net = PanNet(self.cfg)
        scale = 1.0 if log == "ln" else 1.0 / math.log(10.0)
        self.register_buffer("log_scale", torch.tensor(scale, dtype=torch.float32))
        if cond == "sync":
            self.register_buffer("frame_seconds", torch.tensor(frame_seconds, dtype=torch.float64))

    def pan_logits(self, mel: torch.Tensor, visual: torch.Tensor | None = None,
                   span: tuple[int, int] | None = None) -> torch.Tensor:
        """Log-mel [B,M,F] (+ visual [B,Lv,Dv]) -> pan logits a [B,M,F]; p = sigmoid(a) is the left share.

        `span` = (start, total): the mel is frames [start, start + F) of a clip of `total` frames,
        and `visual` covers that whole clip (so a chunk sees the picture of its own time)."""
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels:
            raise ValueError(f"Mono2Stereo expects a log-mel [B, {self.cfg.n_mels}, F], got {tuple(mel.shape)}")
        if visual is not None:
            if self.cfg.visual_dim is None:
                visual = None  # an audio-only module ignores video features
            elif visual.dim() != 3 or visual.shape[-1] != self.cfg.visual_dim or visual.shape[0] != mel.shape[0]:
                raise ValueError(f"Mono2Stereo expects visual features [{mel.shape[0]}, Lv, {self.cfg.visual_dim}], "
                                 f"got {tuple(visual.shape)}")
        return self.pan_net(mel, visual, span)                                 # B M F

    def pan(self, mel: torch.Tensor, visual: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel [B,M,F] -> left share p [B,M,F] in (0, 1)."""
        return torch.sigmoid(self.pan_logits(mel, visual))

    def apply_pan(self, mel: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Log-mel [B,M,F] and pan logits [B,M,F] -> left/right log-mels [B,2,M,F]."""
        ln2 = math.log(2.0)
        left = mel + (ln2 + Fn.logsigmoid(logits)) * self.log_scale           # B M F
        right = mel + (ln2 + Fn.logsigmoid(-logits)) * self.log_scale         # B M F
        return torch.stack([left, right], dim=1)                               # B 2 M F

    def forward(self, mel: torch.Tensor, visual: torch.Tensor | None = None) -> torch.Tensor:
        return self.apply_pan(mel, self.pan_logits(mel, visual))


def pan_targets(left: torch.Tensor, right: torch.Tensor, log: str = "ln",
                floor: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Left/right log-mels [B,M,F] -> (mono log-mel (L + R)/2 [B,M,F], left share p = L/(L + R) [B,M,F])."""
    lin_l, lin_r = log_expand(left.float(), log), log_expand(right.float(), log)
    total = lin_l + lin_r
    mono = log_compress(total / 2, log, floor)
    return mono, lin_l / total.clamp_min(1e-30)


def stereo_targets(left_wave: torch.Tensor, right_wave: torch.Tensor, mel_fn) -> dict[str, torch.Tensor]:
    """Left/right waves [B,T] and a MelSpectrogram -> {"mono", "pan", "stereo"} training targets.

    mono [B,M,F] is the linear-domain mix (L + R)/2 of the channel mels (the module's input), pan
    [B,M,F] the true left share, stereo [B,2,M,F] the channel log-mels (the module's target).
    """
    if left_wave.shape != right_wave.shape:
        raise ValueError(f"left and right waves differ in shape: {tuple(left_wave.shape)} vs {tuple(right_wave.shape)}")
    left, right = mel_fn(left_wave), mel_fn(right_wave)                        # B M F
    mono, pan = pan_targets(left, right, mel_fn.cfg.log, mel_fn.cfg.log_floor)
    return {"mono": mono, "pan": pan, "stereo": torch.stack([left, right], dim=1)}


def load_mono2stereo(path: str | Path, *, device=None, dtype=None) -> Mono2Stereo:
    """Mono2Stereo weight file (`pan_net.*` + `log_scale`) -> module in eval mode, sized from its shapes."""
    path = Path(path)
    sd = read_state_dict(path)
    if "pan_net.conv_in.weight" not in sd or "pan_net.conv_out.weight" not in sd:
        raise CheckpointError(f"{path.name} is not a Mono2Stereo file (no pan_net.conv_in/conv_out weights); "
                              "give the mono2stereo.safetensors a Kling-Foley export wrote")
    hidden, n_mels, kernel = sd["pan_net.conv_in.weight"].shape
    layers = len({k.split(".")[2] for k in sd if k.startswith("pan_net.blocks.")})
    visual = sd.get("pan_net.visual_proj.weight")
    scale = float(sd["log_scale"]) if "log_scale" in sd else 1.0
    log = "ln" if abs(scale - 1.0) < 1e-6 else "log10"
    cond = "sync" if "frame_seconds" in sd else "visual"
    frame_s = float(sd["frame_seconds"]) if cond == "sync" else 512 / 44100
    with torch.device("meta"):
        model = Mono2Stereo(n_mels, None if visual is None else visual.shape[1], hidden, layers, kernel, log,
                            cond, frame_s)
    load_strict(model, sd, what=path.name)
    return model.to(device=device, dtype=dtype).eval()
