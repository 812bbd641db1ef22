"""Weight-free spectral features and an event-class classifier fitted on them (numpy + scipy).

- `log_mel(audio, sr)`: a small triangular mel filterbank (HTK mel scale) over an STFT -> [M, F].
- `clip_features(audio, sr)`: per-clip statistics of the log-mel (spectral shape, level,
  spread, temporal change, onset rate) -> [D]; invariant to the absolute level except for one
  level feature, so a quieter generation is not misread as another class.
- `window_features(audio, sr)`: per-0.25 s-window log-mel means and spreads -> [Nw, 2M], the
  samples of the Fréchet distance in `sync_metrics`.
- `SpectralClassifier`: standardised features -> multinomial logistic regression (L2), fitted
  with L-BFGS; `fit / predict / save / load` (a single .npz, no pickles).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.optimize import minimize

__all__ = ["log_mel", "clip_features", "window_features", "SpectralClassifier"]

N_FFT, HOP, N_MELS = 1024, 256, 40


def _mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 40.0, fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale -> [n_mels, n_fft//2 + 1]."""
    fmax = min(sr / 2, fmax or 16000.0)

    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(fmin), mel(fmax), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - freqs[None]) / np.maximum(hi - mid, 1e-9)
    return np.clip(np.minimum(up, down), 0.0, None)


def _stft_mag(mono: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Mono [N] -> magnitude [n_fft//2+1, F], frames centred at i·hop (zero padded)."""
    padded = np.pad(mono.astype(np.float64), (n_fft // 2, n_fft // 2))
    n_frames = 1 + max(0, (padded.size - n_fft) // hop)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    return np.abs(np.fft.rfft(padded[idx] * np.hanning(n_fft)[None], axis=1)).T


def log_mel(audio: np.ndarray, sr: int, n_mels: int = N_MELS, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """Audio [C, N] or [N] (channels averaged) -> log10 mel power [n_mels, F], floor 1e-10."""
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    power = _stft_mag(mono, n_fft, hop) ** 2
    return np.log10(np.maximum(_mel_filterbank(sr, n_fft, n_mels) @ power, 1e-10))


def clip_features(audio: np.ndarray, sr: int) -> np.ndarray:
    """Audio [C, N] -> feature vector [4·M + 3]: shape, spread, change, peaks; level; onset stats."""
    lm = log_mel(audio, sr)  # M F
    level = lm.mean()
    shape = lm.mean(axis=1) - level  # spectral envelope, level-free
    spread = lm.std(axis=1)
    change = np.abs(np.diff(lm, axis=1)).mean(axis=1) if lm.shape[1] > 1 else np.zeros(lm.shape[0])
    peaks = np.percentile(lm, 95, axis=1) - np.median(lm, axis=1)
    flux = np.maximum(np.diff(lm, axis=1), 0).sum(axis=0) if lm.shape[1] > 1 else np.zeros(1)
    rate = float((flux > flux.mean() + 2 * flux.std()).mean())  # fraction of frames that are onsets
    return np.concatenate([shape, spread, change, peaks, [level, rate, np.log1p(flux.std())]]).astype(np.float64)


def window_features(audio: np.ndarray, sr: int, window_s: float = 0.25, n_mels: int = 32) -> np.ndarray:
    """Audio [C, N] -> per-window features [Nw, 2·n_mels]: log-mel mean and std in each window."""
    lm = log_mel(audio, sr, n_mels=n_mels)  # M F
    per = max(1, int(round(window_s * sr / HOP)))
    n_win = lm.shape[1] // per
    if n_win == 0:
        raise ValueError(f"audio of {audio.shape[-1]} samples is shorter than one {window_s} s feature window")
    blocks = lm[:, : n_win * per].reshape(lm.shape[0], n_win, per)  # M Nw per
    return np.concatenate([blocks.mean(axis=2), blocks.std(axis=2)], axis=0).T


class SpectralClassifier:
    """Multinomial logistic regression on standardised `clip_features` (weight-free: fitted here)."""

    def __init__(self, classes: Sequence[str], mean: np.ndarray, std: np.ndarray,
                 weight: np.ndarray, bias: np.ndarray, sample_rate: int) -> None:
        self.classes = list(classes)
        self.mean, self.std, self.weight, self.bias = mean, std, weight, bias
        self.sample_rate = sample_rate

    @classmethod
    def fit(cls, audios: Sequence[np.ndarray], labels: Sequence[str], sample_rate: int,
            l2: float = 1e-2, max_iter: int = 500) -> "SpectralClassifier":
        """Ground-truth clips [C, N] with their class names -> a fitted classifier."""
        if len(audios) != len(labels) or len(audios) < 2:
            raise ValueError(f"fit needs >= 2 clips with one label each, got {len(audios)} clips, {len(labels)} labels")
        classes = sorted(set(labels))
        feats = np.stack([clip_features(a, sample_rate) for a in audios])
        mean, std = feats.mean(axis=0), feats.std(axis=0) + 1e-6
        x = (feats - mean) / std
        y = np.array([classes.index(lbl) for lbl in labels])
        n, d, k = x.shape[0], x.shape[1], len(classes)
        onehot = np.eye(k)[y]

        def loss_grad(params):
            w, b = params[: d * k].reshape(d, k), params[d * k:]
            logits = x @ w + b
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            p /= p.sum(axis=1, keepdims=True)
            loss = -np.log(p[np.arange(n), y] + 1e-12).mean() + l2 * (w ** 2).sum()
            g = (p - onehot) / n
            return loss, np.concatenate([(x.T @ g + 2 * l2 * w).ravel(), g.sum(axis=0)])

        res = minimize(loss_grad, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
        return cls(classes, mean, std, res.x[: d * k].reshape(d, k), res.x[d * k:], sample_rate)

    def predict_proba(self, audios: Sequence[np.ndarray]) -> np.ndarray:
        """Clips [C, N] -> class probabilities [B, K] (columns follow `self.classes`)."""
        x = (np.stack([clip_features(a, self.sample_rate) for a in audios]) - self.mean) / self.std
        logits = x @ self.weight + self.bias
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, audios: Sequence[np.ndarray]) -> list[str]:
        """Clips [C, N] -> the most likely class name of each."""
        return [self.classes[i] for i in self.predict_proba(audios).argmax(axis=1)]

    def save(self, path: str | Path) -> None:
        """Write the classifier to one .npz (arrays + a json header; no pickles)."""
        header = json.dumps({"classes": self.classes, "sample_rate": self.sample_rate, "features": "clip_features/v1"})
        np.savez(path, mean=self.mean, std=self.std, weight=self.weight, bias=self.bias, header=np.array(header))

    @classmethod
    def load(cls, path: str | Path) -> "SpectralClassifier":
        """Read a classifier written by `save`; raises ValueError when the file is not one."""
        with np.load(path, allow_pickle=False) as data:
            missing = {"mean", "std", "weight", "bias", "header"} - set(data.files)
            if missing:
                raise ValueError(f"{path} is not a SpectralClassifier file (missing {sorted(missing)}); "
                                 f"write one with SpectralClassifier.save")
            header = json.loads(str(data["header"]))
            if header.get("features") != "clip_features/v1":
                raise ValueError(f"{path} was fitted on features {header.get('features')!r}, this code computes "
                                 f"'clip_features/v1': refit it")
            return cls(header["classes"], data["mean"], data["std"], data["weight"], data["bias"], header["sample_rate"])
