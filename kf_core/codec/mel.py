"""Log-mel front end (MMAudio / BigVGAN-v2 recipe), its approximate inverse for Griffin-Lim, and the
inverse of its STFT framing (`STFTFraming`, shared by Griffin-Lim and the iSTFT-head vocoder).

wave [B,T] -> clamp to [-1, 1] -> reflect-pad (n_fft - hop)/2 on both sides -> STFT with
center=False and a periodic Hann window -> magnitude sqrt(re² + im² + 1e-9) -> Slaney mel
filterbank with Slaney area normalisation -> ln or log10 of clamp(x, log_floor).
For T a multiple of hop this gives F = T // hop frames; frame f is centred on sample f·hop + hop/2.

`mel_filterbank` is written here (librosa is only used by tests to check it). It is computed in
float64 and cast to float32, which reproduces librosa's float32 filterbank bit for bit.

Shape legend: B batch, T samples, M mel bins, K linear-frequency bins (n_fft//2 + 1), F mel frames.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import nn

from ..config import CodecConfig

__all__ = ["hz_to_mel", "mel_to_hz", "mel_filterbank", "MelSpectrogram", "STFTFraming", "log_compress",
           "log_expand"]

# Slaney's Auditory Toolbox mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above
# with 27 mels per factor 6.4 in frequency.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0

MAG_EPS = 1e-9  # added inside the sqrt of the magnitude (MMAudio G22)


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Frequencies in Hz -> Slaney mels (float64)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    high = hz >= _MIN_LOG_HZ
    return np.where(high, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-300) / _MIN_LOG_HZ) / _LOG_STEP, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Slaney mels -> frequencies in Hz (float64)."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    high = mel >= _MIN_LOG_MEL
    return np.where(high, _MIN_LOG_HZ * np.exp(_LOG_STEP * (mel - _MIN_LOG_MEL)), hz)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> torch.Tensor:
    """Rates and sizes -> Slaney-scale, area-normalised triangular filterbank [M, n_fft//2 + 1] float32."""
    fmax = sample_rate / 2 if fmax is None else float(fmax)
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"mel_filterbank needs 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, "
                         f"fmax={fmax}, sample_rate={sample_rate}")
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)                 # K
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # M+2
    widths = np.diff(edges)                                                    # M+1
    dist = edges[:, None] - fft_hz[None, :]                                    # M+2 K
    rising = -dist[:-2] / widths[:-1, None]                                    # M K
    falling = dist[2:] / widths[1:, None]                                      # M K
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney normalisation: each triangle has unit area in Hz (height 2 / bandwidth).
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return torch.from_numpy(weights.astype(np.float32))


def log_compress(x: torch.Tensor, log: str, floor: float) -> torch.Tensor:
    """Linear magnitudes -> ln or log10 of clamp(x, floor)."""
    x = x.clamp_min(floor)
    return x.log() if log == "ln" else x.log10()


def log_expand(x: torch.Tensor, log: str) -> torch.Tensor:
    """Log magnitudes (ln or log10) -> linear magnitudes."""
    return x.exp() if log == "ln" else torch.pow(10.0, x)


class MelSpectrogram(nn.Module):
    """wave [B,T] in [-1,1] -> log-mel [B,M,F], F = T // hop (T a multiple of hop)."""

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad = (cfg.n_fft - cfg.hop) // 2
        # Buffers are derived from cfg, never stored in checkpoints.
        basis = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.mel_fmax)
        self.register_buffer("mel_basis", basis, persistent=False)            # M K
        self.register_buffer("window", torch.hann_window(cfg.win, periodic=True), persistent=False)
        self.framing = STFTFraming(cfg.n_fft, cfg.hop, cfg.win)
        self._pinv: torch.Tensor | None = None

    @property
    def hop(self) -> int:
        return self.cfg.hop

    def frames(self, samples: int) -> int:
        """Number of mel frames for `samples` input samples."""
        return (samples + 2 * self.pad - self.cfg.n_fft) // self.cfg.hop + 1

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [B,T] -> STFT magnitude [B,K,F] (float32), with the front end's clamp, padding and framing."""
        if wave.dim() != 2:
            raise ValueError(f"MelSpectrogram expects a waveform batch [B, T], got shape {tuple(wave.shape)}; "
                             "flatten channels into the batch (wave.flatten(0, 1)) first")
        if wave.shape[-1] <= self.pad:
            raise ValueError(f"the waveform has {wave.shape[-1]} samples; the front end needs more than "
                             f"{self.pad} (reflect padding of (n_fft - hop)/2); give at least one hop more")
        spec = self.stft(wave.float().clamp(-1.0, 1.0))                          # B K F
        return torch.sqrt(spec.real.square() + spec.imag.square() + MAG_EPS)

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [B,T] -> complex STFT [B,K,F] in the front end's framing (reflect pad, center=False)."""
        return self.framing.stft(wave)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mag = self.magnitude(wave)                                               # B K F
        mel = torch.matmul(self.mel_basis.float(), mag)                          # B M F
        return log_compress(mel, self.cfg.log, self.cfg.log_floor)

    def mel_to_linear(self, mel_log: torch.Tensor) -> torch.Tensor:
        """Log-mel [B,M,F] -> non-negative linear magnitude estimate [B,K,F] (pseudo-inverse of the basis)."""
        if mel_log.dim() != 3 or mel_log.shape[1] != self.cfg.n_mels:
            raise ValueError(f"mel_to_linear expects a log-mel [B, {self.cfg.n_mels}, F], got {tuple(mel_log.shape)}")
        pinv = self._pseudo_inverse().to(mel_log.device)                         # K M
        mel = log_expand(mel_log.float(), self.cfg.log)                          # B M F
        return torch.matmul(pinv, mel).clamp_min(0.0)                            # B K F

    def _pseudo_inverse(self) -> torch.Tensor:
        if self._pinv is None:
            # numpy's SVD: torch.linalg.pinv takes seconds on a 128 x 1025 matrix on some CPUs.
            self._pinv = torch.from_numpy(np.linalg.pinv(self.mel_basis.double().cpu().numpy())).float()
        return self._pinv


class STFTFraming(nn.Module):
    """The front end's STFT framing, both ways: `stft(wave [B,T]) -> [B,K,F]` and
    `istft(spec [B,K,F]) -> wave [B,F·hop]` (its least-squares inverse).

    The front end reflect-pads (n_fft − hop)/2 samples and frames with center=False, so frame f
    covers samples [f·hop − pad, f·hop − pad + n_fft) and is centred on f·hop + hop/2. The inverse
    overlap-adds irfft(frames)·window and divides by the overlap-added window², then crops the
    padding; for a consistent spectrogram (the stft of a wave) the wave comes back exactly.
    torch.istft cannot do this framing (center=False fails its window-envelope check at the
    edges), hence the fold. No buffers: the window is made per call, so a module built on the
    meta device and then loaded holds no meta tensors.
    """

    def __init__(self, n_fft: int, hop: int, win: int | None = None) -> None:
        super().__init__()
        win = n_fft if win is None else win
        if not 0 < hop <= win <= n_fft or (n_fft - hop) % 2:
            raise ValueError(f"STFTFraming needs 0 < hop <= win <= n_fft and n_fft - hop even, got "
                             f"n_fft={n_fft}, hop={hop}, win={win}")
        self.n_fft, self.hop, self.win, self.pad = n_fft, hop, win, (n_fft - hop) // 2

    def window(self, device: torch.device, dtype: torch.dtype, padded: bool = True) -> torch.Tensor:
        """The periodic Hann window, zero-padded (centred) to n_fft as torch.stft does when win < n_fft."""
        w = torch.hann_window(self.win, periodic=True, device=device, dtype=dtype)
        if not padded:
            return w
        left = (self.n_fft - self.win) // 2
        return Fn.pad(w, (left, self.n_fft - self.win - left))                    # n_fft

    def stft(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [B,T] -> complex STFT [B,K,F], F = T // hop for T a multiple of hop."""
        x = Fn.pad(wave[:, None], (self.pad, self.pad), mode="reflect")[:, 0]    # B T+2p
        return torch.stft(x, self.n_fft, hop_length=self.hop, win_length=self.win,
                          window=self.window(x.device, x.dtype, padded=False), center=False, normalized=False,
                          onesided=True, return_complex=True)                    # B K F

    def istft(self, spec: torch.Tensor, inverse: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Complex STFT [B,K,F] -> its least-squares waveform [B,F·hop]. `inverse` is
        `inverse_terms(F, ...)` when many spectrograms of one size are inverted (Griffin-Lim)."""
        if spec.dim() != 3 or spec.shape[1] != self.n_fft // 2 + 1:
            raise ValueError(f"STFTFraming.istft expects a complex STFT [B, {self.n_fft // 2 + 1}, F], "
                             f"got {tuple(spec.shape)}")
        n_fft, hop, frames = self.n_fft, self.hop, spec.shape[-1]
        window, inv_norm = inverse or self.inverse_terms(frames, spec.device, spec.real.dtype)
        chunks = torch.fft.irfft(spec, n=n_fft, dim=1).mul_(window[:, None])      # B n_fft F
        length = (frames - 1) * hop + n_fft
        wave = Fn.fold(chunks, (1, length), (1, n_fft), stride=(1, hop))[:, 0, 0]  # B T+2p
        return wave[:, self.pad:self.pad + frames * hop].mul_(inv_norm)           # B F·hop

    def inverse_terms(self, frames: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (the synthesis window [n_fft], 1 / the overlap-added window² over the kept samples [F·hop])."""
        n_fft, hop = self.n_fft, self.hop
        window = self.window(device, dtype)
        env = window.square()[None, :, None].expand(1, n_fft, frames)
        norm = Fn.fold(env, (1, (frames - 1) * hop + n_fft), (1, n_fft), stride=(1, hop))[0, 0, 0]   # T+2p
        return window, norm[self.pad:self.pad + frames * hop].clamp_min(1e-8).reciprocal()
