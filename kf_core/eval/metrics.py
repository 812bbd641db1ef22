"""Objective codec metrics (paper Table 3): reference s and estimate ŝ, mono waveforms [T] or [B,T].

| metric | better | definition (below) |
| --- | --- | --- |
| si_sdr | higher | scale-invariant SDR, dB |
| sdr | higher | plain SDR 10·log10(‖s‖²/‖s − ŝ‖²), dB (no scaling, no filter: NOT BSS-eval) |
| lsd | lower | log-spectral distance of log10 power spectra |
| mcd | lower | mel-cepstral distortion (c0 excluded), dB |
| stft_loss | lower | multi-resolution STFT loss (spectral convergence + log magnitude) |
| mel_loss | lower | L1 between log-mel spectrograms of the codec's front end |
| pesq_wb | higher | ITU-T P.862.2 wideband PESQ via the `pesq` package, at 16 kHz |

Batched inputs give one value per item [B]; the caller averages. All in float64 on the CPU
(metrics, not training losses).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..codec.mel import MelSpectrogram, mel_filterbank
from ..config import CodecConfig

__all__ = ["si_sdr", "sdr", "lsd", "mcd", "stft_loss", "mel_loss", "pesq_wb", "STFT_RESOLUTIONS",
           "MCD_CONSTANT", "codec_metrics"]

_EPS = 1e-10
# (n_fft, hop, win) of the multi-resolution STFT loss (Parallel WaveGAN's three resolutions).
STFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048))
# MCD in dB for cepstra of a natural-log spectrum: (10 / ln 10) · sqrt(2).
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)


def _pair(ref: torch.Tensor, est: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ref, est = torch.as_tensor(ref), torch.as_tensor(est)
    if ref.shape != est.shape:
        raise ValueError(f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} must have the same "
                         "shape; trim both to the shorter length first")
    if ref.dim() not in (1, 2) or ref.shape[-1] == 0:
        raise ValueError(f"metrics take mono waves [T] or [B, T], got {tuple(ref.shape)}")
    return ref.double().reshape(-1, ref.shape[-1]).cpu(), est.double().reshape(-1, est.shape[-1]).cpu()


def _out(value: torch.Tensor, batched: bool) -> torch.Tensor:
    return value if batched else value[0]


def si_sdr(ref: torch.Tensor, est: torch.Tensor, *, zero_mean: bool = True) -> torch.Tensor:
    """SI-SDR (Le Roux et al. 2019), dB: α = ⟨ŝ,s⟩/‖s‖², 10·log10(‖αs‖² / ‖αs − ŝ‖²); means removed first."""
    s, e = _pair(ref, est)
    if zero_mean:
        s, e = s - s.mean(-1, keepdim=True), e - e.mean(-1, keepdim=True)
    alpha = (e * s).sum(-1, keepdim=True) / (s.square().sum(-1, keepdim=True) + _EPS)
    target = alpha * s
    value = 10 * torch.log10((target.square().sum(-1) + _EPS) / ((target - e).square().sum(-1) + _EPS))
    return _out(value, torch.as_tensor(ref).dim() == 2)


def sdr(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    """Plain SDR, dB: 10·log10(‖s‖² / ‖s − ŝ‖²) (no projection; a gain error counts as distortion)."""
    s, e = _pair(ref, est)
    value = 10 * torch.log10((s.square().sum(-1) + _EPS) / ((s - e).square().sum(-1) + _EPS))
    return _out(value, torch.as_tensor(ref).dim() == 2)


def _stft_mag(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """[B,T] -> magnitude [B,K,F] (centred, reflect padding, periodic Hann)."""
    window = torch.hann_window(win, periodic=True, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window, center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.abs()


def lsd(ref: torch.Tensor, est: torch.Tensor, *, n_fft: int = 2048, hop: int = 512) -> torch.Tensor:
    """LSD = mean over frames of sqrt(mean over bins of (log10 P − log10 P̂)²), P = |STFT|² + 1e-10.

    STFT: n_fft 2048, hop 512, Hann (the 44.1 kHz codec framing). Dimensionless (log10 units).
    """
    s, e = _pair(ref, est)
    lp_s = torch.log10(_stft_mag(s, n_fft, hop, n_fft).square() + _EPS)
    lp_e = torch.log10(_stft_mag(e, n_fft, hop, n_fft).square() + _EPS)
    value = (lp_s - lp_e).square().mean(1).sqrt().mean(-1)
    return _out(value, torch.as_tensor(ref).dim() == 2)


def _mel_power(x: torch.Tensor, sample_rate: int, n_fft: int, hop: int, n_mels: int) -> torch.Tensor:
    """[B,T] -> mel power [B,M,F] (Slaney mels of |STFT|²)."""
    fb = mel_filterbank(sample_rate, n_fft, n_mels).double()                       # M K
    return torch.matmul(fb, _stft_mag(x, n_fft, hop, n_fft).square())             # B M F


def _cepstrum(mel_power: torch.Tensor, floor: torch.Tensor, n_ceps: int) -> torch.Tensor:
    """Mel power [B,M,F] -> c0..c(n_ceps−1) [B,n_ceps,F]: orthonormal DCT-II of ln(max(P, floor))."""
    n_mels = mel_power.shape[1]
    logmel = torch.log(torch.maximum(mel_power, floor))
    k = torch.arange(n_ceps, dtype=torch.float64)[:, None]
    m = torch.arange(n_mels, dtype=torch.float64)[None]
    dct = torch.cos(math.pi / n_mels * (m + 0.5) * k) * math.sqrt(2.0 / n_mels)  # n_ceps M
    dct[0] /= math.sqrt(2.0)
    return torch.matmul(dct, logmel)                                               # B n_ceps F


def mcd(ref: torch.Tensor, est: torch.Tensor, sample_rate: int, *, n_mels: int = 80, n_ceps: int = 13,
        n_fft: int | None = None) -> torch.Tensor:
    """MCD, dB = (10/ln10)·√2 · mean over frames of sqrt(Σ_{k=1}^{12} (c_k − ĉ_k)²); c0 (energy) excluded.

    Cepstra: orthonormal DCT-II of ln mel power (80 Slaney mels, STFT n_fft ≈ 46 ms (2048 at
    44.1 kHz), hop n_fft/4). Both mel powers are floored at 80 dB below the reference's peak, so
    digital silence does not dominate. Frames are compared one to one (no DTW: a codec keeps the timing).
    """
    s, e = _pair(ref, est)
    n_fft = n_fft or (1 << max(8, round(math.log2(0.0464 * sample_rate))))
    p_s = _mel_power(s, sample_rate, n_fft, n_fft // 4, n_mels)
    p_e = _mel_power(e, sample_rate, n_fft, n_fft // 4, n_mels)
    floor = p_s.amax(dim=(1, 2), keepdim=True).clamp_min(_EPS) * 1e-8              # B 1 1
    c_s = _cepstrum(p_s, floor, n_ceps)[:, 1:]
    c_e = _cepstrum(p_e, floor, n_ceps)[:, 1:]
    value = MCD_CONSTANT * (c_s - c_e).square().sum(1).sqrt().mean(-1)
    return _out(value, torch.as_tensor(ref).dim() == 2)


def stft_loss(ref: torch.Tensor, est: torch.Tensor,
              resolutions: tuple[tuple[int, int, int], ...] = STFT_RESOLUTIONS) -> torch.Tensor:
    """Mean over resolutions of SC + LM: SC = ‖|S| − |Ŝ|‖_F / ‖|S|‖_F, LM = mean |ln|S| − ln|Ŝ||.

    Magnitudes are clamped to 1e-7 before the log; resolutions (n_fft, hop, win) =
    (512, 128, 512), (1024, 256, 1024), (2048, 512, 2048).
    """
    s, e = _pair(ref, est)
    total = torch.zeros(s.shape[0], dtype=torch.float64)
    for n_fft, hop, win in resolutions:
        ms, me = _stft_mag(s, n_fft, hop, win), _stft_mag(e, n_fft, hop, win)
        sc = torch.linalg.vector_norm(ms - me, dim=(1, 2)) / (torch.linalg.vector_norm(ms, dim=(1, 2)) + _EPS)
        lm = (ms.clamp_min(1e-7).log() - me.clamp_min(1e-7).log()).abs().mean(dim=(1, 2))
        total += sc + lm
    return _out(total / len(resolutions), torch.as_tensor(ref).dim() == 2)


def mel_loss(ref: torch.Tensor, est: torch.Tensor, cfg: CodecConfig) -> torch.Tensor:
    """Mean |log-mel(s) − log-mel(ŝ)| with the codec's own front end (ln for 44.1 kHz, log10 for 16 kHz)."""
    s, e = _pair(ref, est)
    front = MelSpectrogram(cfg)
    value = (front(s.float()) - front(e.float())).abs().double().mean(dim=(1, 2))
    return _out(value, torch.as_tensor(ref).dim() == 2)


def pesq_wb(ref: torch.Tensor, est: torch.Tensor, sample_rate: int) -> float:
    """Wideband PESQ (MOS-LQO, −0.5…4.5) of one mono pair, resampled to 16 kHz first (polyphase)."""
    from pesq import PesqError, pesq
    from scipy.signal import resample_poly
    s, e = _pair(ref, est)
    if s.shape[0] != 1:
        raise ValueError("pesq_wb scores one pair at a time; loop over the batch")
    s_np, e_np = s[0].numpy(), e[0].numpy()
    if sample_rate != 16000:
        g = math.gcd(16000, sample_rate)
        s_np = resample_poly(s_np, 16000 // g, sample_rate // g)
        e_np = resample_poly(e_np, 16000 // g, sample_rate // g)
    try:
        return float(pesq(16000, s_np.astype(np.float32), e_np.astype(np.float32), "wb"))
    except PesqError as err:  # BufferTooShort, NoUtterances: speech-length constraints of P.862
        raise ValueError(f"PESQ cannot score this pair ({type(err).__name__}: {err}); PESQ needs speech-like "
                         f"audio of at least 0.25 s with detectable utterances (got "
                         f"{s.shape[-1] / sample_rate:.2f} s)") from err


def codec_metrics(ref: torch.Tensor, est: torch.Tensor, cfg: CodecConfig, *, with_pesq: bool = True) -> dict[str, float]:
    """One mono pair [T] -> {metric: value} for Table 3; PESQ is None where it cannot be computed."""
    row = {"si_sdr": si_sdr(ref, est).item(), "sdr": sdr(ref, est).item(), "lsd": lsd(ref, est).item(),
           "mcd": mcd(ref, est, cfg.sample_rate).item(), "mel_loss": mel_loss(ref, est, cfg).item(),
           "stft_loss": stft_loss(ref, est).item()}
    row["pesq"] = None
    if with_pesq:
        try:
            row["pesq"] = pesq_wb(ref, est, cfg.sample_rate)
        except ValueError:
            row["pesq"] = None  # not speech-like: reported as missing, as the paper does for SFX/music
    return row
