"""Weight-free vocoder: log-mel [B,M,F] -> waveform [B,1,F·hop] by fast Griffin-Lim.

The linear magnitude comes from the pseudo-inverse of the mel basis (non-negative). Phase is then
recovered with the "fast" Griffin-Lim of Perraudin, Balazs & Søndergaard (2013): alternate
projections onto the consistent spectrograms and onto the target magnitude, with a momentum
term t_n = c_n + α (c_n − c_{n−1}) on the consistent estimate.

The STFT used here is exactly the front end's (reflect pad (n_fft − hop)/2, center=False,
periodic Hann), and the inverse is the least-squares overlap-add of that framing, cropped back
to F·hop samples (`mel.STFTFraming`). So frame f stays centred on sample f·hop + hop/2 and onsets land where the
front end saw them. The initial phase is drawn from a seeded CPU generator (deterministic, the
same for every batch item) or is zero. It is drawn in blocks of PHASE_BLOCK frames, each from its
own seed, so frame f gets the same phase however the mel is cut: `forward(mel, frame_offset=a)`
vocodes frames [a, a + F) of a longer mel exactly as the whole would, away from the cut edges
(`context_frames` frames on each side suffice: each iteration spreads influence by less than
n_fft / hop frames).

Shape legend: B batch, M mel bins, K linear bins (n_fft//2 + 1), F mel frames, T samples (F·hop).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..config import CodecConfig
from .mel import MelSpectrogram, STFTFraming

__all__ = ["GriffinLim", "PHASE_BLOCK"]

PHASE_BLOCK = 64  # mel frames per independently seeded block of the initial phase


class GriffinLim(nn.Module):
    """Log-mel [B,M,F] -> waveform [B,1,F·hop] in [-1, 1]; no weights, deterministic."""

    def __init__(self, cfg: CodecConfig, n_iter: int = 32, momentum: float = 0.99, init: str = "random",
                 seed: int = 0) -> None:
        super().__init__()
        if n_iter < 0:
            raise ValueError(f"GriffinLim needs n_iter >= 0, got {n_iter}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"GriffinLim momentum must be in [0, 1), got {momentum} (0.99 is the usual fast setting)")
        if init not in ("random", "zero"):
            raise ValueError(f"GriffinLim init must be 'random' or 'zero' phase, got {init!r}")
        self.cfg, self.n_iter, self.momentum, self.init, self.seed = cfg, n_iter, momentum, init, seed
        self.front = MelSpectrogram(cfg)
        self.framing = STFTFraming(cfg.n_fft, cfg.hop, cfg.win)

    @property
    def hop(self) -> int:
        return self.cfg.hop

    @property
    def context_frames(self) -> int:
        """Mel frames on each side that can change an output sample (the exact receptive field)."""
        per = -(-self.cfg.n_fft // self.cfg.hop)  # frames one STFT window touches
        return self.n_iter * (per - 1) + per

    def _initial_phase(self, shape: torch.Size, device: torch.device, frame_offset: int = 0) -> torch.Tensor:
        if self.init == "zero":
            return torch.ones(shape, dtype=torch.complex64, device=device)
        # One phase field for every item, so an item's result does not depend on its batch, and
        # one seed per block of frames, so a frame's phase does not depend on where the mel was cut.
        k, frames = shape[-2:]
        first, last = frame_offset // PHASE_BLOCK, (frame_offset + frames - 1) // PHASE_BLOCK
        blocks = [torch.rand(k, PHASE_BLOCK, generator=torch.Generator(device="cpu").manual_seed(
            (self.seed * 1_000_003 + b) % 2 ** 63)) for b in range(first, last + 1)]
        skip = frame_offset - first * PHASE_BLOCK
        angle = torch.cat(blocks, dim=1)[:, skip:skip + frames] * (2 * math.pi)   # K F
        return torch.polar(torch.ones_like(angle), angle).to(device).expand(shape)

    def forward(self, mel: torch.Tensor, frame_offset: int = 0) -> torch.Tensor:
        """Log-mel [B,M,F] (frames [frame_offset, frame_offset + F) of a clip) -> wave [B,1,F·hop]."""
        if mel.dim() != 3 or mel.shape[1] != self.cfg.n_mels:
            raise ValueError(f"GriffinLim expects a log-mel [B, {self.cfg.n_mels}, F], got {tuple(mel.shape)}")
        frames = mel.shape[-1]
        samples = frames * self.cfg.hop
        if samples <= self.front.pad:
            raise ValueError(f"GriffinLim needs at least {self.front.pad // self.cfg.hop + 1} mel frames "
                             f"(reflect padding), got {frames}")
        mag = self.front.mel_to_linear(mel.float())                                  # B K F
        phase = self._initial_phase(mag.shape, mag.device, frame_offset)             # B K F
        if self.cfg.n_fft % self.cfg.hop or self.cfg.win != self.cfg.n_fft:
            wave = self._iterate_general(mag, phase)
        else:
            wave = _Workspace(self.framing, mag).iterate(phase, self.n_iter, self.momentum / (1 + self.momentum))
        return wave.clamp(-1.0, 1.0)[:, None]                                        # B 1 T

    def _iterate_general(self, mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """The same iteration through STFTFraming (any window and hop), allocating as it goes."""
        beta = self.momentum / (1 + self.momentum)
        inverse = self.framing.inverse_terms(mag.shape[-1], mag.device, mag.dtype)
        prev = None
        wave = self.framing.istft(mag * phase, inverse)                              # B T
        for _ in range(self.n_iter):
            consistent = self.framing.stft(wave)                                     # B K F
            accel = consistent - beta * prev if prev is not None and beta else consistent
            prev = consistent
            scale = accel.abs().clamp_min_(1e-12).reciprocal_().mul_(mag)            # mag / |accel|
            wave = self.framing.istft(accel * scale, inverse)                        # B T
        return wave


class _Workspace:
    """Fast Griffin-Lim for a full-length window whose hop divides n_fft, in buffers made once: every
    iteration reuses them (no allocation in the loop: on CPU, fresh multi-MB temporaries each
    iteration cost page faults and fragment the heap over a long clip's many chunks).

    Frames are kept [B,F,n_fft] and spectra [B,F,K] (the FFT along the last, contiguous axis);
    the padded wave is one buffer whose middle is the wave, so framing it is a view."""

    def __init__(self, framing: STFTFraming, mag: torch.Tensor) -> None:
        b, k, f = mag.shape
        n, hop, pad = framing.n_fft, framing.hop, framing.pad
        self.n, self.hop, self.pad, self.f, self.r = n, hop, pad, f, n // hop
        self.window, self.inv_norm = framing.inverse_terms(f, mag.device, mag.dtype)   # n, F·hop
        self.mag = mag.transpose(1, 2).contiguous()                                  # B F K
        self.padded = mag.new_zeros(b, f * hop + 2 * pad)                            # B T+2p
        self.frames = mag.new_empty(b, f, n)                                         # B F n
        self.ola = mag.new_empty(b, f + self.r - 1, hop)                             # B (F+r-1) hop
        self.spec = torch.empty(b, f, k, dtype=torch.complex64, device=mag.device)   # B F K
        self.prev = torch.empty_like(self.spec)
        self.accel = torch.empty_like(self.spec)
        self.scale = mag.new_empty(b, f, k)                                          # B F K

    @property
    def wave(self) -> torch.Tensor:
        return self.padded[:, self.pad:self.pad + self.f * self.hop]                 # B T (a view)

    def _synthesise(self, spec: torch.Tensor) -> None:
        """Spectrum [B,F,K] -> self.wave (least-squares overlap-add) and its reflect padding."""
        torch.fft.irfft(spec, n=self.n, dim=-1, out=self.frames)
        self.frames.mul_(self.window)
        parts = self.frames.view(*self.frames.shape[:2], self.r, self.hop)           # B F r hop
        self.ola.zero_()
        for j in range(self.r):
            self.ola[:, j:j + self.f].add_(parts[:, :, j])
        whole = self.ola.view(self.ola.shape[0], -1)                                 # B T+2p
        torch.mul(whole[:, self.pad:self.pad + self.f * self.hop], self.inv_norm, out=self.wave)
        t, p = self.f * self.hop, self.pad
        self.padded[:, :p] = self.padded[:, p + 1:2 * p + 1].flip(-1)
        self.padded[:, p + t:] = self.padded[:, t - 1:p + t - 1].flip(-1)

    def _analyse(self) -> torch.Tensor:
        """self.wave -> its STFT [B,F,K] (into self.spec)."""
        frames = self.padded.unfold(-1, self.n, self.hop)                            # B F n (a view)
        torch.mul(frames, self.window, out=self.frames)
        return torch.fft.rfft(self.frames, dim=-1, out=self.spec)

    def iterate(self, phase: torch.Tensor, n_iter: int, beta: float) -> torch.Tensor:
        """Initial phase [B,K,F] -> the wave [B,T] after n_iter fast Griffin-Lim iterations."""
        torch.mul(self.mag, phase.transpose(1, 2), out=self.accel)
        self._synthesise(self.accel)
        for it in range(n_iter):
            spec = self._analyse()                                                   # B F K
            if it and beta:
                torch.sub(spec, self.prev, alpha=beta, out=self.accel)               # accel = c - beta·prev
            else:
                self.accel.copy_(spec)
            self.spec, self.prev = self.prev, self.spec                              # prev <- this estimate
            torch.abs(self.accel, out=self.scale)
            self.scale.clamp_min_(1e-12).reciprocal_().mul_(self.mag)                # mag / |accel|
            self.accel.mul_(self.scale)
            self._synthesise(self.accel)
        return self.wave.clone()
