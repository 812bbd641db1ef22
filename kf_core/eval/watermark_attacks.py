"""What happens to Foley on its way to a viewer, as functions: (wave [C,T], sr, rng) -> (wave', sr').

    wave2, sr2 = ATTACKS["aac128+16k+3s"](wave, 44100, rng)

Also the non-Foley material the benchmark needs (for the null set and for mixing): noise,
music-like chords and speech-like babble, all synthesised from a numpy Generator.
Codecs run through PyAV in memory (FFmpeg's aac, libmp3lame, libopus), as a browser or an upload
pipeline would encode them; the decoded audio comes back at the codec's rate with its delay.
"""
from __future__ import annotations

import io
from collections.abc import Callable

import av
import numpy as np
import torch

from kf_core.io import resample

__all__ = ["ATTACKS", "EXTRA_ATTACKS", "codec_roundtrip", "noise", "music", "speech"]

Attack = Callable[[torch.Tensor, int, np.random.Generator], tuple[torch.Tensor, int]]

_CODECS = {"aac": ("adts", "aac", None), "mp3": ("mp3", "libmp3lame", None), "opus": ("ogg", "libopus", 48000)}


def codec_roundtrip(wave: torch.Tensor, sr: int, codec: str, kbps: int) -> tuple[torch.Tensor, int]:
    """[C,T] -> encoded with `codec` ("aac", "mp3", "opus") at `kbps` and decoded again -> ([C,T'], sr')."""
    fmt, name, rate = _CODECS[codec]
    x = wave.float().clamp(-1, 1)
    if rate is not None and rate != sr:
        x, sr = resample(x, sr, rate), rate
    x = x.numpy()
    layout = "stereo" if x.shape[0] == 2 else "mono"
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        st = out.add_stream(name, rate=sr, layout=layout)
        st.bit_rate = kbps * 1000
        fmt_name = st.codec_context.codec.audio_formats[0].name
        for s in range(0, x.shape[1], 1024):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, s:s + 1024]), format="fltp", layout=layout)
            fr.sample_rate, fr.pts = sr, s
            if fmt_name != "fltp":
                fr = av.AudioResampler(format=fmt_name, layout=layout, rate=sr).resample(fr)[0]
            for p in st.encode(fr):
                out.mux(p)
        for p in st.encode(None):
            out.mux(p)
    buf.seek(0)
    parts = []
    with av.open(buf, "r") as inp:
        rs = av.AudioResampler(format="fltp")
        for fr in inp.decode(audio=0):
            parts += [f.to_ndarray() for f in rs.resample(fr)]
        dec_rate = inp.streams.audio[0].codec_context.sample_rate
    return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32)), int(dec_rate)


# ---------------------------------------------------------------- material
def noise(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Coloured noise (white to brown, slowly modulated) [n], RMS 0.1."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    spec *= 1.0 / np.maximum(f, 20.0) ** rng.uniform(0.0, 1.0)
    x = np.fft.irfft(spec, n)
    x *= 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * np.arange(n) / sr)
    return 0.1 * x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def music(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Music-like tones [n], RMS 0.1: chords of harmonic notes with attack/decay, changing every beat."""
    t = np.arange(n) / sr
    beat = rng.uniform(0.25, 0.7)
    x = np.zeros(n)
    for start in np.arange(0, n / sr, beat):
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        idx = (t >= start) & (t < start + 3 * beat)
        tt = t[idx] - start
        env = np.minimum(tt / 0.01, 1) * np.exp(-tt / (beat * rng.uniform(0.5, 2)))
        for interval in rng.choice([0, 3, 4, 7, 10, 12], size=3, replace=False):
            f0 = root * 2 ** (interval / 12)
            for h in range(1, 8):
                if f0 * h < sr / 2:
                    x[idx] += env * np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 6.3)) / h ** 1.2
    return 0.1 * x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def speech(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Speech-like babble [n], RMS 0.1: a gliding glottal pulse train through moving formants, in syllables."""
    t = np.arange(n) / sr
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = np.cumsum(f0 / sr)
    src = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64) + 0.02 * rng.standard_normal(n)
    spec = np.fft.rfft(src)
    freqs = np.fft.rfftfreq(n, 1 / sr)
    shaped = np.zeros(len(freqs))
    for fc, bw in ((rng.uniform(300, 800), 80), (rng.uniform(900, 2200), 120), (rng.uniform(2300, 3200), 200)):
        shaped += 1.0 / (1 + ((freqs - fc) / bw) ** 2)
    x = np.fft.irfft(spec * shaped, n)
    syll = np.clip(np.sin(2 * np.pi * rng.uniform(3, 6) * t + rng.uniform(0, 6.3)), 0, None) ** 0.5
    x *= syll
    return 0.1 * x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


# ---------------------------------------------------------------- attacks
def _excerpt(wave, sr, rng, seconds=3.0):
    n = int(round(seconds * sr))
    if wave.shape[-1] <= n:
        return wave, sr
    start = int(rng.integers(0, wave.shape[-1] - n + 1))
    return wave[:, start:start + n], sr


def _shift(wave, sr, rng):
    """Cut up to 1 s from the start (any sample count) and pad as much room tone at the end."""
    k = int(rng.integers(1, sr))
    tail = wave.std() * 1e-3 * torch.randn(wave.shape[0], k, generator=torch.Generator().manual_seed(k))
    return torch.cat([wave[:, k:], tail], dim=1), sr


def _mix(kind, db):
    def attack(wave, sr, rng):
        other = torch.from_numpy({"music": music, "speech": speech}[kind](rng, wave.shape[-1], sr)).float()
        rms = wave.pow(2).mean().sqrt()
        return wave + other * (rms / 0.1) * 10 ** (db / 20), sr
    return attack


def _gain(db):
    return lambda wave, sr, rng: ((wave * 10 ** (db / 20)).clamp(-1, 1), sr)


def _resampled(rate):
    return lambda wave, sr, rng: (resample(wave, sr, rate), rate)


def _chain(*steps):
    def attack(wave, sr, rng):
        for step in steps:
            wave, sr = step(wave, sr, rng)
        return wave, sr
    return attack


def _codec(codec, kbps):
    return lambda wave, sr, rng: codec_roundtrip(wave, sr, codec, kbps)


def _speed(factor):
    """Played faster: the same samples declared at factor·sr, then brought back to sr (pitch moves too)."""
    return lambda wave, sr, rng: (resample(wave, int(round(sr * factor)), sr), sr)


ATTACKS: dict[str, Attack] = {
    "none": lambda wave, sr, rng: (wave, sr),
    "aac 128k": _codec("aac", 128), "aac 96k": _codec("aac", 96),
    "mp3 128k": _codec("mp3", 128), "mp3 96k": _codec("mp3", 96),
    "opus 128k": _codec("opus", 128), "opus 96k": _codec("opus", 96),
    "resample 48k": _resampled(48000), "resample 32k": _resampled(32000), "resample 16k": _resampled(16000),
    "mono": lambda wave, sr, rng: (wave.mean(0, keepdim=True), sr),
    "gain +6 dB": _gain(6), "gain -6 dB": _gain(-6),
    "music -10 dB": _mix("music", -10), "speech -10 dB": _mix("speech", -10),
    "3 s excerpt": _excerpt, "time shift": _shift,
    "aac128+16k+3s": _chain(_codec("aac", 128), _resampled(16000), _excerpt),
}

# beyond the brief: where it stops working
EXTRA_ATTACKS: dict[str, Attack] = {
    "music 0 dB": _mix("music", 0), "speech 0 dB": _mix("speech", 0),
    "speed +1 %": _speed(1.01), "speed +3 %": _speed(1.03),
    "aac 64k": _codec("aac", 64),
}
