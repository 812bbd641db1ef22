"""Vocos-style neural vocoder: log-mel [N,M,F] -> waveform [N,1,F·hop] through an iSTFT head.

mel -> Conv1d(k7) embedding -> LayerNorm -> ConvNeXt blocks (depthwise conv k7, LayerNorm,
pointwise MLP ×3 with GELU, per-channel layer scale, residual) -> LayerNorm -> linear head to
(log magnitude residual, phase) of every STFT bin. The magnitude is the residual on top of a fixed
prior, the mel filterbank's pseudo-inverse applied to the linear mel (what Griffin-Lim starts from):
log|S| = log(max(B⁺·mel_lin, 1e-5)) + residual. Then S = |S|·(cos φ + i sin φ) -> `STFTFraming` in
the front end's own framing (n_fft 2048, hop 512 at 44.1 kHz), so frame f of the output is centred
where frame f of the mel was and the wave has exactly F·hop samples.

Why this design for kf-tiny (issue 12): every layer runs at the mel frame rate (86 frames/s), not
at the sample rate as in HiFi-GAN/BigVGAN, where the upsampling stacks spend almost all their
compute on 44 100 samples/s; the one transform to samples is an inverse FFT. A 2.5 M-parameter
backbone therefore vocodes far faster than real time on two CPU cores and trains in minutes per
thousand steps on them. The head predicts the STFT the mel front end measured, and the
pseudo-inverse prior hands it the right magnitudes from step 0, so the short CPU training goes
into the phase and the fine spectral detail; the phase is predicted, not iterated, so there are
no Griffin-Lim phase artefacts (Siuzdak, "Vocos", 2023, without the prior).

The file is self-describing: the persistent int buffer `framing` holds (sample_rate, n_fft, hop,
log kind, fmin Hz, fmax Hz) of the front end it inverts and the number of projections, which the weights alone cannot tell;
`detect_vocos_config` reads the rest from the shapes.

Shape legend: N batch, M mel bins, F mel frames, D width, H MLP width, K STFT bins (n_fft/2 + 1),
T samples (F·hop).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import nn

from ..config import CodecConfig
from .mel import STFTFraming, log_expand, mel_filterbank

__all__ = ["VocosConfig", "VOCOS_PRESETS", "Vocos", "vocos_config_for", "detect_vocos_config", "is_vocos_state_dict"]

LOG_MAG_MAX = 8.0  # |S| <= e^8 ≈ 3000: a full-scale sine reaches ≈ 512 in the front end's STFT units
PRIOR_FLOOR = 1e-5  # the magnitude prior's floor (sqrt of the front end's 1e-9 is 3e-5)
LOG_KINDS = ("ln", "log10")


@dataclass(frozen=True)
class VocosConfig:
    """Vocoder sizes plus the STFT framing it inverts (the codec front end's)."""

    n_mels: int = 128
    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 512
    log: str = "ln"               # the mel's compression (CodecConfig.log)
    fmin: int = 0                 # the mel filterbank's range in whole Hz (fmax 0: sample_rate / 2)
    fmax: int = 0
    dim: int = 192
    mlp_dim: int = 576
    layers: int = 8
    kernel_size: int = 7
    projections: int = 0          # consistency projections after the head (see `Vocos.forward`)

    def __post_init__(self) -> None:
        if min(self.n_mels, self.sample_rate, self.dim, self.mlp_dim, self.layers) <= 0:
            raise ValueError(f"VocosConfig needs positive n_mels/sample_rate/dim/mlp_dim/layers, got {self}")
        if not 0 < self.hop <= self.n_fft or (self.n_fft - self.hop) % 2 or self.n_fft % 2:
            raise ValueError(f"VocosConfig: need 0 < hop ({self.hop}) <= n_fft ({self.n_fft}), n_fft even and "
                             "n_fft - hop even (the front end pads (n_fft - hop)/2 on each side)")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"VocosConfig.kernel_size must be odd (same-length convs), got {self.kernel_size}")
        if not 0 <= self.projections <= 8:
            raise ValueError(f"VocosConfig.projections must be in 0..8, got {self.projections}")
        if self.log not in LOG_KINDS:
            raise ValueError(f"VocosConfig.log must be one of {LOG_KINDS}, got {self.log!r}")
        if not 0 <= self.fmin < (self.fmax or self.sample_rate / 2) <= self.sample_rate / 2:
            raise ValueError(f"VocosConfig needs 0 <= fmin < fmax <= sample_rate/2, got {self.fmin}, {self.fmax}")

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1


VOCOS_PRESETS: dict[str, VocosConfig] = {
    # kf-tiny's vocoder for the 44.1 kHz / 128-bin / hop-512 codec: ~2.4 M parameters (4.7 MB in fp16)
    "tiny": VocosConfig(),
    # the Vocos paper's backbone width (13.5 M parameters), for GPU training on real audio
    "base": VocosConfig(dim=512, mlp_dim=1536, layers=8),
}


def vocos_config_for(codec: CodecConfig, size: VocosConfig = VOCOS_PRESETS["tiny"]) -> VocosConfig:
    """A codec's mel front end + a preset's sizes -> the VocosConfig that inverts that front end."""
    if codec.win != codec.n_fft:
        raise ValueError(f"Vocos inverts STFTs whose window spans n_fft; this codec has win {codec.win} < "
                         f"n_fft {codec.n_fft}")
    fmax = 0 if codec.fmax is None or codec.fmax == codec.sample_rate / 2 else codec.fmax
    if codec.fmin != int(codec.fmin) or fmax != int(fmax):
        raise ValueError(f"Vocos stores the mel range in whole Hz; this codec has fmin {codec.fmin}, fmax {codec.fmax}")
    return replace(size, n_mels=codec.n_mels, sample_rate=codec.sample_rate, n_fft=codec.n_fft, hop=codec.hop,
                   log=codec.log, fmin=int(codec.fmin), fmax=int(fmax))


class ConvNeXtBlock(nn.Module):
    """x [N,D,F] -> [N,D,F]: x + γ·MLP(LN(dwconv(x)))."""

    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        k = cfg.kernel_size
        self.dwconv = nn.Conv1d(cfg.dim, cfg.dim, k, padding=k // 2, groups=cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.pwconv1 = nn.Linear(cfg.dim, cfg.mlp_dim)
        self.pwconv2 = nn.Linear(cfg.mlp_dim, cfg.dim)
        self.gamma = nn.Parameter(torch.full((cfg.dim,), 1.0 / cfg.layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)                                     # N F D
        h = self.pwconv2(Fn.gelu(self.pwconv1(self.norm(h))))                  # N F D
        return x + (self.gamma * h).transpose(1, 2)                            # N D F


class Vocos(nn.Module):
    """Log-mel [N,M,F] (the codec front end's ln-mel) -> waveform [N,1,F·hop] in [-1, 1]."""

    def __init__(self, cfg: VocosConfig = VOCOS_PRESETS["tiny"]) -> None:
        super().__init__()
        self.cfg = cfg
        k = cfg.kernel_size
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, k, padding=k // 2)
        self.norm_in = nn.LayerNorm(cfg.dim, eps=1e-6)
        # a learned vector per frame index mod n_fft/hop: a steady tone's STFT phase advances by ω·hop
        # per frame, which a shift-equivariant conv net fed a constant mel cannot produce
        self.frame_pos = nn.Parameter(torch.zeros(cfg.n_fft // cfg.hop, cfg.dim))
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg) for _ in range(cfg.layers))
        self.norm_out = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.istft_head = nn.Linear(cfg.dim, 2 * cfg.bins)
        self.register_buffer("framing", torch.tensor(
            [cfg.sample_rate, cfg.n_fft, cfg.hop, LOG_KINDS.index(cfg.log), cfg.fmin, cfg.fmax, cfg.projections],
            dtype=torch.int64))
        self.transform = STFTFraming(cfg.n_fft, cfg.hop)  # the front end's STFT, both ways
        self._prior: torch.Tensor | None = None  # B⁺ [K, M], made on first use (not a buffer: meta builds)
        self.init_weights()

    def init_weights(self) -> None:
        """Truncated-normal linear/conv weights (σ 0.02), zero biases, layer scale 1/layers."""
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            nn.init.constant_(block.gamma, 1.0 / self.cfg.layers)
        nn.init.trunc_normal_(self.frame_pos, std=0.02)

    @property
    def hop(self) -> int:
        return self.cfg.hop

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    def prior_matrix(self, device: torch.device) -> torch.Tensor:
        """The pseudo-inverse of the front end's mel filterbank [K, M] (float32, on `device`)."""
        if self._prior is None:
            c = self.cfg
            basis = mel_filterbank(c.sample_rate, c.n_fft, c.n_mels, c.fmin, c.fmax or None).double().numpy()
            # numpy's SVD: torch.linalg.pinv takes seconds on a 128 x 1025 matrix on some CPUs
            self._prior = torch.from_numpy(np.linalg.pinv(basis)).float()
        if self._prior.device != device:
            self._prior = self._prior.to(device)
        return self._prior

    @property
    def context_frames(self) -> int:
        """Mel frames on each side that can change an output sample (the exact receptive field, for
        `codec.chunking`): the convolutions' reach, plus the frames one STFT window spans, plus that
        span less one for each consistency projection."""
        per = -(-self.cfg.n_fft // self.cfg.hop)                              # frames one window touches
        return (self.cfg.kernel_size // 2) * (self.cfg.layers + 1) + per + self.cfg.projections * (per - 1)

    def spectrum(self, mel: torch.Tensor, frame_offset: int = 0) -> torch.Tensor:
        """Log-mel [N,M,F] (frames [frame_offset, frame_offset + F) of a clip) -> the complex STFT
        [N,K,F] the head predicts."""
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels:
            raise ValueError(f"Vocos expects a log-mel [N, {self.cfg.n_mels}, F], got {tuple(mel.shape)}")
        h = self.norm_in(self.embed(mel).transpose(1, 2))                       # N F D
        pos = (torch.arange(h.shape[1], device=h.device) + frame_offset) % self.frame_pos.shape[0]
        h = (h + self.frame_pos[pos].to(h.dtype)).transpose(1, 2)               # N D F
        for block in self.blocks:
            h = block(h)                                                       # N D F
        out = self.istft_head(self.norm_out(h.transpose(1, 2)))                # N F 2K
        residual, phase = out.float().transpose(1, 2).chunk(2, dim=1)          # N K F each
        lin = torch.matmul(self.prior_matrix(mel.device), log_expand(mel.float(), self.cfg.log))  # N K F
        log_mag = lin.clamp_min(PRIOR_FLOOR).log() + residual
        mag = log_mag.clamp(max=LOG_MAG_MAX).exp()
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))   # N K F

    def forward(self, mel: torch.Tensor, frame_offset: int = 0, return_spectrum: bool = False):
        """mel [N,M,F] -> wave [N,1,F·hop] (and the STFT [N,K,F] it is the inverse of, when
        return_spectrum, for the trainer's spectrum losses). `frame_offset`: mel's first frame in the
        whole clip (the frame-position vectors follow the clip's frame index, so a chunk vocoded with
        `context_frames` of context on each side equals the same span of the whole).

        With `projections` P > 0 the head's spectrum S₀ goes through P consistency projections
        before the last inverse, S ← |S₀|·STFT(iSTFT(S))/|STFT(iSTFT(S))| (Griffin-Lim's step,
        unrolled and trained through, as in Deep Griffin-Lim): the network learns a phase from
        which a few projections reach a consistent spectrogram."""
        spec = self.spectrum(mel, frame_offset)                                # N K F
        wave = self.transform.istft(spec)                                        # N T
        if self.cfg.projections:
            mag = spec.abs()
            for _ in range(self.cfg.projections):
                c = self.transform.stft(wave)                                    # N K F
                spec = mag * (c / c.abs().clamp_min(1e-5))
                wave = self.transform.istft(spec)                                # N T
        wave = wave.clamp(-1.0, 1.0).to(mel.dtype)[:, None]                   # N 1 T
        return (wave, spec) if return_spectrum else wave


def is_vocos_state_dict(sd: Mapping[str, torch.Tensor]) -> bool:
    return "istft_head.weight" in sd and "framing" in sd and "embed.weight" in sd


def detect_vocos_config(sd: Mapping[str, torch.Tensor]) -> VocosConfig:
    """Vocos state dict -> the VocosConfig its shapes and `framing` buffer describe."""
    dim, n_mels, kernel = (int(n) for n in sd["embed.weight"].shape)
    ids = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
    if not ids or ids != set(range(len(ids))):
        raise ValueError(f"Vocos blocks must be numbered 0..L-1, found {sorted(ids)}")
    framing = [int(v) for v in sd["framing"].tolist()]
    if len(framing) != 7 or framing[3] not in (0, 1):
        raise ValueError(f"the framing buffer must hold (sample_rate, n_fft, hop, log kind 0/1, fmin, fmax, "
                         f"projections), got {framing}")
    sample_rate, n_fft, hop, log_kind, fmin, fmax, projections = framing
    bins = int(sd["istft_head.weight"].shape[0]) // 2
    if bins != n_fft // 2 + 1:
        raise ValueError(f"Vocos head predicts {bins} STFT bins but its framing says n_fft {n_fft} "
                         f"({n_fft // 2 + 1} bins)")
    return VocosConfig(n_mels=n_mels, sample_rate=sample_rate, n_fft=n_fft, hop=hop, log=LOG_KINDS[log_kind],
                       fmin=fmin, fmax=fmax, projections=projections, dim=dim,
                       mlp_dim=int(sd["blocks.0.pwconv1.weight"].shape[0]), layers=len(ids), kernel_size=kernel)
