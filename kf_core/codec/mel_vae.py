"""Kling-Foley's Mel-VAE (paper §4.5): log-mel [B,M,F] <-> Gaussian latent [B,C,F/2] at 43.07 Hz.

Encoder (Make-An-Audio-2-like residual 1D conv stack): conv_in -> levels of residual blocks with
widths width·ch_mult, the frame count halved once by a stride-2 conv after level 0 -> middle
blocks -> GroupNorm, SiLU, conv_out to 2C channels (mean, log-variance). The full config counts 32
Conv1d layers in the encoder (the paper's "32 stacked 1D-convolutional layers"; 1×1 shortcuts
included, `MelVAEConfig.encoder_conv_layers`). The decoder mirrors it and restores the frame
count with a stride-2 transposed convolution.

Odd frame counts: `encode` repeats the last frame once (replicate pad) so the latent has
ceil(F/2) tokens; `decode(z, frames=F)` crops the 2·La decoded frames back to F.

The mel is standardised per bin with the VAE's own `mel_mean`/`mel_std` buffers (like MMAudio's
data_mean/data_std), so callers pass and receive plain log-mels.

KL (eq. 2): `DiagonalGaussian.kl()` is the per-element KL to N(0, I); `kl_margin_loss` averages it
over every latent element (batch, channel, frame) by default — the convention of
`kf_core.train.vae` — or sums channels and averages frames with reduction="frame" (= C × the
element mean); then max(0, KL − Δ).

Shape legend: B batch, M mel bins, F mel frames, C latent channels, La latent frames (F/2), D width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as Fn
from torch import nn

__all__ = ["MelVAEConfig", "MEL_VAE_PRESETS", "MelVAE", "DiagonalGaussian", "kl_margin_loss", "detect_mel_vae_config"]

LOGVAR_RANGE = (-30.0, 20.0)


class DiagonalGaussian:
    """Posterior N(mean, exp(logvar)) over latents [B,C,La]; logvar clamped to [-30, 20]."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        if mean.shape != logvar.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and logvar {tuple(logvar.shape)} must have one shape")
        self.mean = mean
        self.logvar = logvar.clamp(*LOGVAR_RANGE)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> torch.Tensor:
        return torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised draw z = mean + std·ε, ε ~ N(0, I) (differentiable in mean and logvar)."""
        # drawn where the generator lives (a CPU generator also seeds a CUDA run), then moved
        device = generator.device if generator is not None else self.mean.device
        eps = torch.randn(self.mean.shape, generator=generator, device=device, dtype=self.mean.dtype)
        return self.mean + self.std * eps.to(self.mean.device)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(N(mean, var) || N(0, 1)) per element [B,C,La]."""
        return 0.5 * (self.mean.square() + self.var - 1.0 - self.logvar)


def kl_margin_loss(posterior: DiagonalGaussian, margin: float = 0.0, reduction: str = "element") -> torch.Tensor:
    """Posterior -> scalar max(0, KL − Δ) (paper eq. 2); KL is the mean per latent element or per frame."""
    if margin < 0:
        raise ValueError(f"the KL margin must be >= 0, got {margin}")
    kl = posterior.kl()                                                        # B C La
    if reduction == "element":
        value = kl.mean()
    elif reduction == "frame":
        value = kl.sum(dim=1).mean()
    else:
        raise ValueError(f"reduction must be 'element' or 'frame', got {reduction!r}")
    return (value - margin).clamp_min(0.0)


@dataclass(frozen=True)
class MelVAEConfig:
    """Mel-VAE sizes. Encoder conv count = 1 + 2·blocks·levels + width changes + 1 (down) + 2·mid + 1."""

    n_mels: int = 128
    latent_channels: int = 40
    width: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 8)
    blocks_per_level: int = 3
    mid_blocks: int = 1
    kernel_size: int = 3
    norm_groups: int = 32  # GroupNorm groups, reduced to gcd(groups, channels) for narrow layers

    def __post_init__(self) -> None:
        if min(self.n_mels, self.latent_channels, self.width) <= 0:
            raise ValueError(f"MelVAEConfig needs positive n_mels/latent_channels/width, got "
                             f"{self.n_mels}/{self.latent_channels}/{self.width}")
        if not self.ch_mult or min(self.ch_mult) <= 0:
            raise ValueError(f"MelVAEConfig.ch_mult must be positive multipliers, got {self.ch_mult}")
        if self.blocks_per_level < 1 or self.mid_blocks < 0:
            raise ValueError(f"MelVAEConfig: blocks_per_level ({self.blocks_per_level}) must be >= 1 and "
                             f"mid_blocks ({self.mid_blocks}) >= 0")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"MelVAEConfig.kernel_size must be odd (same-length convs), got {self.kernel_size}")
        if self.norm_groups < 1:
            raise ValueError(f"MelVAEConfig.norm_groups must be >= 1, got {self.norm_groups}")

    def level_width(self, level: int) -> int:
        return self.width * self.ch_mult[level]

    @property
    def encoder_conv_layers(self) -> int:
        widths = [self.width] + [self.level_width(i) for i in range(len(self.ch_mult))]
        changes = sum(a != b for a, b in zip(widths, widths[1:]))
        return 1 + 2 * self.blocks_per_level * len(self.ch_mult) + changes + 1 + 2 * self.mid_blocks + 1


MEL_VAE_PRESETS: dict[str, MelVAEConfig] = {
    # Paper §4.5: 44.1 kHz, 128 bands, 32 encoder conv layers, latent 40 at 43.07 Hz.
    "full": MelVAEConfig(),
    # kf-tiny v1's codec (the bundled model's): same layout, CPU-sized.
    "tiny": MelVAEConfig(latent_channels=16, width=32, ch_mult=(1, 2), blocks_per_level=1, mid_blocks=1),
    # kf-tiny v2's: twice the width, same latent (the DiT's input is unchanged). Width, not latent size,
    # limited v1: held-out mel L1 5.0 -> 3.6 dB at 1500 steps, while 32 latent channels at width 32 gave
    # 5.2 (`eval vae-probe`, docs/experiments/vae-probe).
    "tiny-v2": MelVAEConfig(latent_channels=16, width=64, ch_mult=(1, 2), blocks_per_level=1, mid_blocks=1),
}


def _norm(cfg: MelVAEConfig, channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(cfg.norm_groups, channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    """x [B,Di,L] -> [B,Do,L]: (GroupNorm, SiLU, conv)×2 plus a shortcut (1×1 conv if widths differ)."""

    def __init__(self, cfg: MelVAEConfig, cin: int, cout: int) -> None:
        super().__init__()
        k = cfg.kernel_size
        self.norm1, self.conv1 = _norm(cfg, cin), nn.Conv1d(cin, cout, k, padding=k // 2)
        self.norm2, self.conv2 = _norm(cfg, cout), nn.Conv1d(cout, cout, k, padding=k // 2)
        self.shortcut = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(Fn.silu(self.norm1(x)))                                 # B Do L
        h = self.conv2(Fn.silu(self.norm2(h)))                                 # B Do L
        return self.shortcut(x) + h


def _level(cfg: MelVAEConfig, cin: int, cout: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(cfg, cin if i == 0 else cout, cout) for i in range(blocks)))


class MelEncoder(nn.Module):
    """Standardised mel [B,M,F] (F even) -> moments [B,2C,F/2]."""

    def __init__(self, cfg: MelVAEConfig) -> None:
        super().__init__()
        k, n = cfg.kernel_size, len(cfg.ch_mult)
        widths = [cfg.width] + [cfg.level_width(i) for i in range(n)]
        self.conv_in = nn.Conv1d(cfg.n_mels, cfg.width, k, padding=k // 2)
        self.levels = nn.ModuleList(_level(cfg, widths[i], widths[i + 1], cfg.blocks_per_level) for i in range(n))
        # The one temporal halving (43.07 Hz latents from 86.13 Hz mels), after the full-rate level.
        self.down = nn.Conv1d(widths[1], widths[1], 4, stride=2, padding=1)
        self.mid = _level(cfg, widths[-1], widths[-1], cfg.mid_blocks)
        self.norm_out = _norm(cfg, widths[-1])
        self.conv_out = nn.Conv1d(widths[-1], 2 * cfg.latent_channels, k, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.levels[0](self.conv_in(x))                                    # B D F
        h = self.down(h)                                                       # B D F/2
        for level in self.levels[1:]:
            h = level(h)                                                       # B D' F/2
        h = self.mid(h)                                                        # B D' F/2
        return self.conv_out(Fn.silu(self.norm_out(h)))                        # B 2C F/2


class MelDecoder(nn.Module):
    """Latent [B,C,La] -> standardised mel [B,M,2La]; mirrors MelEncoder, ×2 by a transposed conv."""

    def __init__(self, cfg: MelVAEConfig) -> None:
        super().__init__()
        k, n = cfg.kernel_size, len(cfg.ch_mult)
        widths = [cfg.level_width(i) for i in range(n)]
        self.conv_in = nn.Conv1d(cfg.latent_channels, widths[-1], k, padding=k // 2)
        self.mid = _level(cfg, widths[-1], widths[-1], cfg.mid_blocks)
        # levels[i] runs at level i's width; executed from the deepest level down to level 0.
        self.levels = nn.ModuleList(
            _level(cfg, widths[min(i + 1, n - 1)], widths[i], cfg.blocks_per_level) for i in range(n))
        up_width = widths[min(1, n - 1)]
        self.up = nn.ConvTranspose1d(up_width, up_width, 4, stride=2, padding=1)
        self.norm_out = _norm(cfg, widths[0])
        self.conv_out = nn.Conv1d(widths[0], cfg.n_mels, k, padding=k // 2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))                                          # B D' La
        for level in reversed(self.levels[1:]):
            h = level(h)                                                       # B D'' La
        h = self.levels[0](self.up(h))                                         # B D 2La
        return self.conv_out(Fn.silu(self.norm_out(h)))                        # B M 2La


class MelVAE(nn.Module):
    """encode(mel [B,M,F]) -> DiagonalGaussian [B,C,ceil(F/2)]; decode(z [B,C,La], frames=None) -> [B,M,2La]."""

    latent_downsample = 2

    def __init__(self, cfg: MelVAEConfig = MEL_VAE_PRESETS["full"]) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mel_mean", torch.zeros(1, cfg.n_mels, 1))
        self.register_buffer("mel_std", torch.ones(1, cfg.n_mels, 1))
        self.encoder = MelEncoder(cfg)
        self.decoder = MelDecoder(cfg)

    @property
    def n_mels(self) -> int:
        return self.cfg.n_mels

    @property
    def latent_channels(self) -> int:
        return self.cfg.latent_channels

    @torch.no_grad()
    def set_mel_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-bin mean [M] and std [M] of training log-mels -> the standardisation buffers."""
        if mean.numel() != self.n_mels or std.numel() != self.n_mels:
            raise ValueError(f"need {self.n_mels} per-bin values, got mean {tuple(mean.shape)}, std {tuple(std.shape)}")
        if (std <= 0).any():
            raise ValueError("mel std must be positive in every bin")
        self.mel_mean.copy_(mean.reshape(1, -1, 1))
        self.mel_std.copy_(std.reshape(1, -1, 1))

    def encode(self, mel: torch.Tensor) -> DiagonalGaussian:
        """Log-mel [B,M,F] -> posterior [B,C,ceil(F/2)] (odd F: last frame repeated once)."""
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ValueError(f"MelVAE.encode expects a log-mel [B, {self.n_mels}, F], got {tuple(mel.shape)}")
        if mel.shape[-1] < 2:
            raise ValueError(f"MelVAE.encode needs at least 2 mel frames, got {mel.shape[-1]}")
        x = (mel - self.mel_mean) / self.mel_std                               # B M F
        if x.shape[-1] % 2:
            x = Fn.pad(x, (0, 1), mode="replicate")                            # B M F+1
        mean, logvar = self.encoder(x).chunk(2, dim=1)                         # B C La
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        """Latent [B,C,La] -> log-mel [B,M,2La], or its first `frames` frames."""
        if z.dim() != 3 or z.shape[1] != self.latent_channels:
            raise ValueError(f"MelVAE.decode expects a latent [B, {self.latent_channels}, La], got {tuple(z.shape)}")
        mel = self.decoder(z) * self.mel_std + self.mel_mean                  # B M 2La
        if frames is not None:
            if not 0 < frames <= mel.shape[-1]:
                raise ValueError(f"cannot crop {mel.shape[-1]} decoded frames to {frames}")
            mel = mel[..., :frames]
        return mel

    def forward(self, mel: torch.Tensor, generator: torch.Generator | None = None,
                sample: bool = True) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Log-mel [B,M,F] -> (reconstruction [B,M,F], posterior); z sampled (reparameterised) or the mean."""
        post = self.encode(mel)
        z = post.sample(generator) if sample else post.mean                    # B C La
        return self.decode(z, frames=mel.shape[-1]), post


def _indices(sd, prefix: str) -> int:
    found = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix) and k[len(prefix)].isdigit()}
    return max(found) + 1 if found else 0


def detect_mel_vae_config(sd) -> MelVAEConfig:
    """MelVAE state dict -> the MelVAEConfig its shapes describe (GroupNorm groups assumed 32)."""
    width, n_mels, kernel = sd["encoder.conv_in.weight"].shape
    latent = sd["decoder.conv_in.weight"].shape[1]
    levels = _indices(sd, "encoder.levels.")
    mult = tuple(int(sd[f"encoder.levels.{i}.0.conv1.weight"].shape[0]) // int(width) for i in range(levels))
    return MelVAEConfig(n_mels=int(n_mels), latent_channels=int(latent), width=int(width), ch_mult=mult,
                        blocks_per_level=_indices(sd, "encoder.levels.0."), mid_blocks=_indices(sd, "encoder.mid."),
                        kernel_size=int(kernel))
