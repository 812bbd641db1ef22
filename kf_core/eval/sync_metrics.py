"""Weight-free metrics of "sound follows picture" (numpy/scipy; no learned weights anywhere).

- Onsets: spectral flux of a log-compressed STFT (n_fft 512 = 11.6 ms, hop 128 = 2.9 ms at
  44.1 kHz), minus a 0.1 s running median; peaks that are local maxima within ±25 ms and rise
  `threshold` above that median are onsets. The threshold is absolute (flux units), so silence
  and quiet room tone give no onsets while stationary noise of any level is removed by the median.
- `onset_scores`: one-to-one matching (Hungarian) within a tolerance -> precision/recall/F1 and
  the mean |error| of matched pairs; unmatched detections inside texture spans (rain, engines)
  are not counted as false positives.
- `desync_offsets`: DeSync-like: per 4.8 s window, the lag in ±2 s maximising the correlation of
  the visual event train (Gaussian impulses, σ 20 ms, at the event times) with the audio onset
  envelope. Positive = audio late.
- `stereo_pairs` / `stereo_correlation`: inter-channel level difference (dB, R over L) in the
  100 ms after each event vs the event's on-screen x; Pearson correlation.
- `frechet_distance`: between Gaussians fitted to two sets of feature vectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import sqrtm
from scipy.ndimage import maximum_filter1d, median_filter
from scipy.optimize import linear_sum_assignment

__all__ = ["OnsetParams", "onset_envelope", "detect_onsets", "onset_scores", "desync_offsets",
           "stereo_pairs", "stereo_correlation", "pearson", "frechet_distance"]


@dataclass(frozen=True)
class OnsetParams:
    """Onset detector settings (see the module docstring for what each one does)."""

    n_fft: int = 512
    hop: int = 128
    gamma: float = 100.0  # log1p(gamma·|X|) compression
    median_s: float = 0.1
    peak_s: float = 0.05  # a peak is the maximum within ±peak_s/2
    threshold: float = 0.15  # flux above the running median
    delay_s: float = -0.0035  # calibration: peaks come 3.5 ms early on ground-truth clips (log compression)

    def __post_init__(self) -> None:
        if self.n_fft <= 0 or self.hop <= 0 or self.gamma <= 0 or self.threshold <= 0:
            raise ValueError(f"OnsetParams need positive n_fft/hop/gamma/threshold, got {self}")


def onset_envelope(audio: np.ndarray, sr: int, params: OnsetParams = OnsetParams()) -> tuple[np.ndarray, float]:
    """Audio [C, N] or [N] -> (median-removed spectral flux [F] >= 0, frames per second).

    Frame i covers the change from the window centred at (i-1)·hop to the one at i·hop, so it is
    stamped at (i - 0.5)·hop / sr.
    """
    mono = (audio.mean(axis=0) if audio.ndim == 2 else audio).astype(np.float64)
    n_fft, hop = params.n_fft, params.hop
    # Reflect, not zero-pad: a sound cut by the clip's end must not look like a broadband onset.
    padded = np.pad(mono, (n_fft // 2, n_fft // 2), mode="reflect")
    n_frames = 1 + max(0, (padded.size - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    mag = np.abs(np.fft.rfft(padded[idx] * np.hanning(n_fft)[None], axis=1))  # F K
    comp = np.log1p(params.gamma * mag)
    flux = np.concatenate([[0.0], np.maximum(np.diff(comp, axis=0), 0.0).mean(axis=1)])
    med = median_filter(flux, size=max(3, int(params.median_s * sr / hop) | 1), mode="nearest")
    return np.maximum(flux - med, 0.0), sr / hop


def _frame_time(i: np.ndarray, rate: float, params: OnsetParams) -> np.ndarray:
    return (np.asarray(i, np.float64) - 0.5) / rate - params.delay_s


def detect_onsets(audio: np.ndarray, sr: int, params: OnsetParams = OnsetParams()) -> np.ndarray:
    """Audio [C, N] -> onset times in seconds [K], sorted."""
    env, rate = onset_envelope(audio, sr, params)
    local_max = env == maximum_filter1d(env, size=max(3, int(params.peak_s * rate) | 1))
    peaks = np.flatnonzero(local_max & (env > params.threshold))
    return np.clip(_frame_time(peaks, rate, params), 0.0, None)


def onset_scores(ref: np.ndarray, est: np.ndarray, tol: float = 0.05,
                 ignore: list[tuple[float, float]] = ()) -> dict:
    """True and detected onset times (s) -> {tp, fp, fn, precision, recall, f1, abs_errors}.

    Pairs are matched one-to-one within `tol` maximising the count, then minimising the error.
    Detections left unmatched inside an `ignore` span (a texture) are dropped, not false positives.
    Empty ref and est give precision = recall = f1 = 1 (nothing to find, nothing invented).
    """
    ref, est = np.asarray(ref, np.float64), np.asarray(est, np.float64)
    matched_r, matched_e = np.zeros(0, int), np.zeros(0, int)
    if ref.size and est.size:
        dist = np.abs(ref[:, None] - est[None, :])
        cost = np.where(dist <= tol, dist, 1e6)  # out of tolerance: never worth a match
        r, e = linear_sum_assignment(cost)
        keep = dist[r, e] <= tol
        matched_r, matched_e = r[keep], e[keep]
    unmatched = np.setdiff1d(np.arange(est.size), matched_e)
    in_texture = np.zeros(unmatched.size, bool)
    for a, b in ignore:
        in_texture |= (est[unmatched] >= a) & (est[unmatched] <= b)
    tp, fp, fn = matched_r.size, int((~in_texture).sum()), ref.size - matched_r.size
    errors = np.abs(ref[matched_r] - est[matched_e])
    precision = tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0)
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1, "abs_errors": errors}


def desync_offsets(event_times: np.ndarray, audio: np.ndarray, sr: int, duration: float,
                   window_s: float = 4.8, max_lag_s: float = 2.0, sigma_s: float = 0.02,
                   params: OnsetParams = OnsetParams()) -> np.ndarray:
    """Visual event times + audio [C, N] -> best lag (s, audio late > 0) per window [W].

    Windows of `window_s` start every ≤ window_s/2 s and cover the clip (one window when the clip
    is shorter). A window without visual events, or with an audio envelope that never
    correlates (silence), gives NaN: the offset is undefined there.
    """
    env, rate = onset_envelope(audio, sr, params)
    times = _frame_time(np.arange(env.size), rate, params)
    ev = np.asarray(event_times, np.float64)
    n_win = 1 if duration <= window_s else int(np.ceil((duration - window_s) / (window_s / 2))) + 1
    starts = np.linspace(0.0, max(0.0, duration - window_s), n_win)
    max_lag = int(round(max_lag_s * rate))
    padded = np.pad(env, (max_lag, max_lag))
    out = np.full(n_win, np.nan)
    for w, start in enumerate(starts):
        inside = ev[(ev >= start) & (ev < start + window_s)]
        if inside.size == 0:
            continue
        sel = (times >= start) & (times < start + window_s)
        train = np.exp(-0.5 * ((times[sel, None] - inside[None, :]) / sigma_s) ** 2).sum(axis=1)
        first = int(np.flatnonzero(sel)[0])
        segs = np.lib.stride_tricks.sliding_window_view(padded[first: first + train.size + 2 * max_lag], train.size)
        corr = segs @ train  # [2·max_lag + 1], index max_lag = no lag
        if corr.max() <= 1e-9:
            continue
        out[w] = (int(np.argmax(corr)) - max_lag) / rate
    return out


def stereo_pairs(events, audio: np.ndarray, sr: int, window_s: float = 0.1) -> np.ndarray:
    """Events + stereo audio [2, N] -> [K, 2] rows of (x, ILD dB = 10·log10(E_R / E_L)).

    Only sharp events with an on-screen x count; windows with (near) no energy are skipped.
    """
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"stereo_pairs needs audio [2, N], got shape {audio.shape}")
    rows = []
    for e in events:
        if e.x is None or not e.onset:
            continue
        a = int(round(e.time_s * sr))
        seg = audio[:, a: a + int(window_s * sr)].astype(np.float64)
        energy = (seg ** 2).sum(axis=1)
        if seg.shape[1] == 0 or energy.sum() < 1e-8 * seg.shape[1]:
            continue
        rows.append((e.x, 10 * np.log10((energy[1] + 1e-12) / (energy[0] + 1e-12))))
    return np.asarray(rows, np.float64).reshape(-1, 2)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two [K] arrays; NaN when K < 3 or either is constant (undefined)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def stereo_correlation(pairs: np.ndarray) -> float:
    """[K, 2] (x, ILD) rows pooled over clips -> correlation of ILD with x (NaN if undefined)."""
    return pearson(pairs[:, 0], pairs[:, 1]) if len(pairs) else float("nan")


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Feature sets [Na, D] and [Nb, D] -> Fréchet distance between their fitted Gaussians."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_distance needs two [N>=2, D] sets with equal D, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eye = 1e-6 * np.eye(a.shape[1])  # keeps sqrtm stable when a set is (near) constant, e.g. silence
    root = sqrtm((cov_a + eye) @ (cov_b + eye))
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))
