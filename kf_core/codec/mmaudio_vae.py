"""MMAudio's magnitude-preserving 1D Mel-VAE (EDM2-style), loadable from its released checkpoints.

mel [B,M,F] -> standardise per bin -> encoder (3 levels, one ×2 downsampling at level 0, attention
only in the middle) -> posterior moments [B,2C,F/2]; latent [B,C,F/2] -> decoder (mirror, one
nearest ×2 upsampling) -> mel [B,M,F]. No biases anywhere; activations clamped to ±256.

Magnitude-preserving (MP) weights. MMAudio's checkpoints store raw weights w; inference uses, per
output channel o with fan = in·k, w_o / (1e-4 + ‖w_o‖/√fan) / √fan (computed in float32). This
normalisation must happen EXACTLY ONCE. Our design: the module's conv parameters always hold the
normalised (inference) weights, and a persistent 0-d buffer `mp_weights_normalized` records that.
- A file in MMAudio's layout (its 57 keys, no flag) is raw: `load_mmaudio_state_dict` normalises it once.
- A file we saved (`state_dict()` = the 57 keys + the flag = 1) is loaded as is, never re-normalised.
`normalize_weights_()` refuses to run twice.

Shape legend: B batch, M mel bins, F mel frames, C latent channels, D width, L frames at a level.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..loading.state import CheckpointError, load_strict
from .mel_vae import DiagonalGaussian

__all__ = ["MMAudioVAEConfig", "MMAUDIO_VAE_PRESETS", "MMAudioVAE", "load_mmaudio_state_dict",
           "detect_mmaudio_vae_config", "mp_normalize_weight", "NORMALIZED_FLAG"]

NORMALIZED_FLAG = "mp_weights_normalized"
_CLIP = 256.0
_MP_EPS = 1e-4


@dataclass(frozen=True)
class MMAudioVAEConfig:
    """data_dim (mel bins), embed_dim (latent channels), hidden_dim (level-0 width); the rest is fixed."""

    data_dim: int = 128
    embed_dim: int = 40
    hidden_dim: int = 512
    ch_mult: tuple[int, ...] = (1, 2, 4)
    enc_blocks: int = 2
    dec_blocks: int = 3

    def __post_init__(self) -> None:
        if min(self.data_dim, self.embed_dim, self.hidden_dim) <= 0:
            raise ValueError(f"MMAudioVAEConfig needs positive sizes, got data_dim={self.data_dim}, "
                             f"embed_dim={self.embed_dim}, hidden_dim={self.hidden_dim}")
        if len(self.ch_mult) < 2:
            raise ValueError(f"MMAudioVAEConfig.ch_mult needs at least 2 levels, got {self.ch_mult}")

    def width(self, level: int) -> int:
        return self.hidden_dim * self.ch_mult[level]

    # The names MelVAEConfig uses, so codec code reads either VAE's config the same way.
    @property
    def n_mels(self) -> int:
        return self.data_dim

    @property
    def latent_channels(self) -> int:
        return self.embed_dim


MMAUDIO_VAE_PRESETS: dict[str, MMAudioVAEConfig] = {
    "44k": MMAudioVAEConfig(data_dim=128, embed_dim=40, hidden_dim=512),   # v1-44.pth, 305 M
    "16k": MMAudioVAEConfig(data_dim=80, embed_dim=20, hidden_dim=384),    # v1-16.pth, 172 M
}


def mp_normalize_weight(w: torch.Tensor) -> torch.Tensor:
    """Raw MP conv weight [O,I,K] -> inference weight: per output row w / (1e-4 + ‖w‖/√fan) / √fan, fp32."""
    w32 = w.float()
    fan = w32[0].numel()
    norm = torch.linalg.vector_norm(w32, dim=list(range(1, w32.dim())), keepdim=True)
    # eps + norm·sqrt(1/fan) as one fused add, in this order, reproduces the reference bit for bit.
    return (w32 / torch.add(_MP_EPS, norm, alpha=math.sqrt(1 / fan)) / math.sqrt(fan)).to(w.dtype)


def _pixel_norm(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """x -> x / (1e-4 + ‖x‖_dim / √n) along `dim`, computed in float32 (unit RMS per position)."""
    x32 = x.float()
    norm = torch.linalg.vector_norm(x32, dim=dim, keepdim=True)
    return (x32 / (_MP_EPS + norm / math.sqrt(x.shape[dim]))).to(x.dtype)


def _mp_silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) / 0.596  # 0.596 = std of silu(N(0,1)): keeps unit magnitude


def _mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.3) -> torch.Tensor:
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


class MPConv1d(nn.Module):
    """x [B,I,L] -> [B,O,L]: bias-free conv, padding k//2, weight already MP-normalised (see module doc)."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel))

    def forward(self, x: torch.Tensor, gain: torch.Tensor | float = 1.0) -> torch.Tensor:
        w = self.weight * gain
        return F.conv1d(x, w.to(x.dtype), padding=w.shape[-1] // 2)


class ResBlock(nn.Module):
    """x [B,Di,L] -> [B,Do,L]: pixel-norm, (mp_silu, conv)×2, MP residual sum with 0.3 weight."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = MPConv1d(cin, cout, 3)
        self.conv2 = MPConv1d(cout, cout, 3)
        if cin != cout:
            self.nin_shortcut = MPConv1d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pixel_norm(x)                                                     # B Di L
        h = self.conv2(_mp_silu(self.conv1(_mp_silu(x))))                      # B Do L
        if hasattr(self, "nin_shortcut"):
            x = self.nin_shortcut(x)                                           # B Do L
        return _mp_sum(x, h)


class AttnBlock(nn.Module):
    """x [B,D,L] -> [B,D,L]: one-head self-attention over time with pixel-normed q, k, v."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.qkv = MPConv1d(dim, 3 * dim, 1)
        self.proj_out = MPConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, n = x.shape
        # Output channel c·3 + j holds q/k/v (j) of channel c: interleaved innermost.
        qkv = self.qkv(x).reshape(b, d, 3, n)                                  # B D 3 L
        q, k, v = _pixel_norm(qkv, dim=1).unbind(2)                            # B D L each
        h = F.scaled_dot_product_attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None],
                                           v.transpose(1, 2)[:, None])         # B 1 L D
        h = self.proj_out(h[:, 0].transpose(1, 2))                             # B D L
        return _mp_sum(x, h)


class Mid(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = ResBlock(dim, dim), AttnBlock(dim), ResBlock(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(x))).clamp(-_CLIP, _CLIP)


class Downsample(nn.Module):
    """x [B,D,L] -> [B,D,L/2]: 1×1 conv, average-pool 2, 1×1 conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = MPConv1d(dim, dim, 1), MPConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), 2))


class Upsample(nn.Module):
    """x [B,D,L] -> [B,D,2L]: nearest ×2 then a 3-tap conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = MPConv1d(dim, dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


class Level(nn.Module):
    """Residual blocks at one resolution, then optional resampling (keys `block.{i}`, `downsample`/`upsample`)."""

    def __init__(self, cin: int, cout: int, blocks: int, resample: str | None) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResBlock(cin if i == 0 else cout, cout) for i in range(blocks))
        if resample == "down":
            self.downsample = Downsample(cout)
        elif resample == "up":
            self.upsample = Upsample(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.block:
            x = blk(x).clamp(-_CLIP, _CLIP)                                    # B D L
        if hasattr(self, "downsample"):
            x = self.downsample(x)
        if hasattr(self, "upsample"):
            x = self.upsample(x)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg: MMAudioVAEConfig) -> None:
        super().__init__()
        self.learnable_gain = nn.Parameter(torch.zeros([]))
        self.conv_in = MPConv1d(cfg.data_dim, cfg.width(0), 3)
        widths = [cfg.width(0)] + [cfg.width(i) for i in range(len(cfg.ch_mult))]
        self.down = nn.ModuleList(Level(widths[i], widths[i + 1], cfg.enc_blocks, "down" if i == 0 else None)
                                  for i in range(len(cfg.ch_mult)))
        self.mid = Mid(widths[-1])
        self.conv_out = MPConv1d(widths[-1], 2 * cfg.embed_dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)                                                    # B D F
        for level in self.down:
            h = level(h)                                                       # B D' L
        h = self.mid(h)                                                        # B 4D F/2
        return self.conv_out(_mp_silu(h), gain=self.learnable_gain + 1)        # B 2C F/2


class Decoder(nn.Module):
    def __init__(self, cfg: MMAudioVAEConfig) -> None:
        super().__init__()
        n = len(cfg.ch_mult)
        self.learnable_gain = nn.Parameter(torch.zeros([]))
        self.conv_in = MPConv1d(cfg.embed_dim, cfg.width(n - 1), 3)
        self.mid = Mid(cfg.width(n - 1))
        # up.{i} is indexed by level (up.{n-1} runs first); level 1 ends with the ×2 upsampling.
        self.up = nn.ModuleList(
            Level(cfg.width(min(i + 1, n - 1)), cfg.width(i), cfg.dec_blocks, "up" if i == 1 else None)
            for i in range(n))
        self.conv_out = MPConv1d(cfg.width(0), cfg.data_dim, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))                                          # B 4D La
        for level in reversed(self.up):
            h = level(h)                                                       # B D' L
        return self.conv_out(_mp_silu(h), gain=self.learnable_gain + 1)        # B M 2La


class MMAudioVAE(nn.Module):
    """MMAudio's Mel-VAE: encode(mel [B,M,F]) -> DiagonalGaussian [B,C,F/2]; decode(z [B,C,La]) -> [B,M,2La]."""

    latent_downsample = 2

    def __init__(self, cfg: MMAudioVAEConfig = MMAUDIO_VAE_PRESETS["44k"]) -> None:
        super().__init__()
        self.cfg = cfg
        # Per-bin mel statistics; real values come from the checkpoint (MMAudio's class constants).
        self.register_buffer("data_mean", torch.zeros(1, cfg.data_dim, 1))
        self.register_buffer("data_std", torch.ones(1, cfg.data_dim, 1))
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.register_buffer(NORMALIZED_FLAG, torch.tensor(0.0))

    @property
    def n_mels(self) -> int:
        return self.cfg.n_mels

    @property
    def latent_channels(self) -> int:
        return self.cfg.latent_channels

    @property
    def weights_normalized(self) -> bool:
        return bool(getattr(self, NORMALIZED_FLAG).item() != 0)

    def _check_normalized(self) -> None:
        if not self.weights_normalized:
            raise RuntimeError("MMAudioVAE holds raw magnitude-preserving weights; load it with "
                               "load_mmaudio_state_dict (or call normalize_weights_() once) before running it")

    @torch.no_grad()
    def normalize_weights_(self) -> "MMAudioVAE":
        """Raw MP weights -> inference weights, in place, once; a second call raises."""
        if self.weights_normalized:
            raise RuntimeError("MMAudioVAE weights are already normalised; normalising twice changes the "
                               "model (MMAudio gotcha G15)")
        for m in self.modules():
            if isinstance(m, MPConv1d):
                # A new Parameter, not an in-place copy: after an assign-load the old tensor is the
                # caller's state-dict entry, which must stay raw.
                m.weight = nn.Parameter(mp_normalize_weight(m.weight.detach()), requires_grad=m.weight.requires_grad)
        getattr(self, NORMALIZED_FLAG).fill_(1.0)
        return self

    def encode(self, mel: torch.Tensor) -> DiagonalGaussian:
        """mel [B,M,F] (F even) -> posterior over latents [B,C,F/2]."""
        self._check_normalized()
        if mel.dim() != 3 or mel.shape[1] != self.n_mels or mel.shape[-1] % 2:
            raise ValueError(f"MMAudioVAE.encode expects [B, {self.n_mels}, F] with F even, got {tuple(mel.shape)}")
        x = (mel - self.data_mean) / self.data_std                             # B M F
        moments = self.encoder(x)                                              # B 2C F/2
        mean, logvar = moments.chunk(2, dim=1)                                 # B C F/2
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latent [B,C,La] -> mel [B,M,2La] (un-standardised log-mel)."""
        self._check_normalized()
        if z.dim() != 3 or z.shape[1] != self.latent_channels:
            raise ValueError(f"MMAudioVAE.decode expects [B, {self.latent_channels}, La], got {tuple(z.shape)}")
        return self.decoder(z) * self.data_std + self.data_mean               # B M 2La


def detect_mmaudio_vae_config(sd: Mapping[str, torch.Tensor]) -> MMAudioVAEConfig:
    """MMAudio VAE state dict (encoder and/or decoder) -> config from its conv shapes."""
    if "decoder.conv_in.weight" in sd:
        hidden_top, embed, _ = sd["decoder.conv_in.weight"].shape
        data_dim = sd["decoder.conv_out.weight"].shape[0]
        hidden = sd["decoder.conv_out.weight"].shape[1]
    elif "encoder.conv_in.weight" in sd:
        hidden, data_dim, _ = sd["encoder.conv_in.weight"].shape
        embed = sd["encoder.conv_out.weight"].shape[0] // 2
    else:
        raise CheckpointError("not an MMAudio VAE state dict: neither encoder.conv_in nor decoder.conv_in found")
    return MMAudioVAEConfig(data_dim=int(data_dim), embed_dim=int(embed), hidden_dim=int(hidden))


def load_mmaudio_state_dict(sd: Mapping[str, torch.Tensor], *, what: str = "MMAudio VAE checkpoint",
                            device: str | torch.device | None = None) -> MMAudioVAE:
    """State dict (MMAudio's raw 57 keys, or ours with the normalised flag) -> ready MMAudioVAE (eval mode).

    Raw files are MP-normalised once here; files carrying `mp_weights_normalized` = 1 are not.
    Inference-only files without the encoder are not accepted: build needs both halves' keys.
    """
    sd = dict(sd)
    raw = NORMALIZED_FLAG not in sd or float(sd[NORMALIZED_FLAG]) == 0.0
    sd[NORMALIZED_FLAG] = torch.tensor(0.0)
    with torch.device("meta"):
        vae = MMAudioVAE(detect_mmaudio_vae_config(sd))
    load_strict(vae, sd, what=what)
    # Normalisation runs in float32 on the loaded tensors, before any move to another device.
    if raw:
        vae.normalize_weights_()
    else:
        getattr(vae, NORMALIZED_FLAG).fill_(1.0)
    if device is not None:
        vae = vae.to(device)
    return vae.eval()
