"""Physically-flavoured sound synthesis for the synthetic world (numpy, mono float32 signals).

Every generator returns a mono signal that starts its attack at sample 0, so placing it at
`round(t * sample_rate)` puts the audible onset exactly at the event time t. Randomness comes
only from the `numpy.random.Generator` passed in. Stereo is made once per source by
`pan_stereo` (constant-power law from on-screen x, per sample for moving sources).
"""
from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter

__all__ = [
    "MATERIALS", "modal", "impact", "membrane", "wood_block", "bell", "footstep", "chirp", "beep",
    "click", "engine", "coloured_noise", "place", "pan_stereo",
]

# Modal ratio / decay (s) / click brightness of the floors and struck objects (§ impacts).
MATERIALS: dict[str, dict] = {
    "wooden": {"ratios": (1.0, 2.76, 5.40, 8.93), "decay": (0.060, 0.030, 0.018, 0.010), "click": 0.25},
    "metal": {"ratios": (1.0, 2.40, 4.11, 6.28, 8.75), "decay": (0.45, 0.30, 0.20, 0.12, 0.08), "click": 0.15},
    "stone": {"ratios": (1.0, 1.87, 3.31, 4.92), "decay": (0.025, 0.018, 0.012, 0.008), "click": 0.5},
}


def _attack(n: int, sample_rate: int, attack_s: float = 0.002) -> np.ndarray:
    """A short linear fade-in [n] so onsets are sharp but click-free."""
    ramp = np.ones(n, np.float32)
    k = min(n, max(1, int(attack_s * sample_rate)))
    ramp[:k] = np.linspace(0.0, 1.0, k, endpoint=False, dtype=np.float32)
    return ramp


def _release(n: int, fraction: float = 0.3) -> np.ndarray:
    """A raised-cosine fade over the last `fraction` of n samples: cutting a ringing sound
    abruptly would be a broadband click, i.e. a false onset."""
    env = np.ones(n, np.float32)
    k = max(1, int(fraction * n))
    env[n - k:] = 0.5 * (1 + np.cos(np.linspace(0.0, np.pi, k, dtype=np.float32)))
    return env


def modal(freqs, amps, decays, length_s: float, sample_rate: int, phases=None) -> np.ndarray:
    """Sum of exponentially damped sinusoids (freqs Hz, amps, decays s) -> [round(length_s·sr)]."""
    n = max(1, int(round(length_s * sample_rate)))
    t = np.arange(n, dtype=np.float64) / sample_rate
    freqs, amps, decays = (np.asarray(v, np.float64)[:, None] for v in (freqs, amps, decays))
    phases = np.zeros_like(freqs) if phases is None else np.asarray(phases, np.float64)[:, None]
    keep = freqs[:, 0] < sample_rate / 2 * 0.95  # drop partials above Nyquist
    modes = amps[keep] * np.exp(-t / decays[keep]) * np.sin(2 * np.pi * freqs[keep] * t + phases[keep])
    return (modes.sum(axis=0) * _attack(n, sample_rate, 0.0005) * _release(n)).astype(np.float32)


def click(rng: np.random.Generator, sample_rate: int, decay_s: float = 0.004, bright: float = 0.5) -> np.ndarray:
    """A tiny noise transient (contact noise) [~6·decay samples]; `bright` in [0,1] tilts it up."""
    n = max(8, int(6 * decay_s * sample_rate))
    noise = rng.standard_normal(n)
    # Mixing white noise with its first difference moves energy to high frequencies.
    noise = (1 - bright) * noise + bright * np.diff(noise, prepend=0.0)
    env = np.exp(-np.arange(n) / (decay_s * sample_rate))
    return (noise * env).astype(np.float32) * _attack(n, sample_rate, 0.0003)


def impact(rng: np.random.Generator, f0: float, material: str, sample_rate: int) -> np.ndarray:
    """An object hitting a floor: modal ring of `material` at fundamental f0 plus a contact click."""
    m = MATERIALS[material]
    ratios = np.asarray(m["ratios"]) * rng.uniform(0.98, 1.02, len(m["ratios"]))
    amps = 1.0 / (1.0 + np.arange(len(ratios))) * rng.uniform(0.6, 1.0, len(ratios))
    decays = np.asarray(m["decay"]) * rng.uniform(0.8, 1.25)
    ring = modal(f0 * ratios, amps, decays, min(1.5, 5 * decays.max()) + 0.01, sample_rate,
                 rng.uniform(0, 2 * np.pi, len(ratios)))
    tick = click(rng, sample_rate, 0.002, 0.7)
    ring[: tick.size] += m["click"] * tick[: ring.size]
    return ring / max(1e-6, np.abs(ring).max())


def membrane(rng: np.random.Generator, f0: float, sample_rate: int) -> np.ndarray:
    """A drum hit by a stick: circular-membrane modes (Bessel ratios) + stick noise."""
    ratios = np.array([1.0, 1.59, 2.14, 2.30, 2.65, 2.92])
    amps = np.array([1.0, 0.6, 0.45, 0.35, 0.25, 0.2]) * rng.uniform(0.7, 1.0, 6)
    decays = np.array([0.35, 0.22, 0.16, 0.12, 0.10, 0.08]) * rng.uniform(0.7, 1.3)
    ring = modal(f0 * ratios, amps, decays, 1.2, sample_rate, rng.uniform(0, 2 * np.pi, 6))
    tick = click(rng, sample_rate, 0.006, 0.3)
    ring[: tick.size] += 0.6 * tick
    return ring / max(1e-6, np.abs(ring).max())


def wood_block(rng: np.random.Generator, f0: float, sample_rate: int) -> np.ndarray:
    """A hollow wooden block hit by a stick: two strong, short, high modes."""
    ring = modal(f0 * np.array([1.0, 2.57, 4.3]), [1.0, 0.45, 0.15],
                 np.array([0.07, 0.03, 0.015]) * rng.uniform(0.8, 1.2), 0.4, sample_rate)
    ring[:200] += 0.2 * click(rng, sample_rate, 0.001, 0.8)[:200]
    return ring / max(1e-6, np.abs(ring).max())


def bell(rng: np.random.Generator, f_nominal: float, sample_rate: int) -> np.ndarray:
    """A struck bell: hum/prime/tierce/quint/nominal partials with long, frequency-dependent decay."""
    # Partials spaced far enough apart that they do not beat inside one analysis bin.
    ratios = np.array([0.5, 1.0, 1.2, 1.5, 2.0, 3.0, 4.2])
    amps = np.array([0.5, 0.8, 0.6, 0.3, 1.0, 0.35, 0.2]) * rng.uniform(0.7, 1.0, 7)
    base = rng.uniform(1.2, 2.5)
    decays = base / (0.6 + ratios)
    ring = modal(f_nominal / 2 * ratios, amps, decays, min(4.0, 3 * decays.max()), sample_rate,
                 rng.uniform(0, 2 * np.pi, 7))
    tick = click(rng, sample_rate, 0.002, 0.6)
    ring[: tick.size] += 0.4 * tick
    return ring / max(1e-6, np.abs(ring).max())


def footstep(rng: np.random.Generator, cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """A footstep: low-passed noise burst (surface sets the cutoff) over a soft body thud."""
    n = int(0.12 * sample_rate)
    noise = rng.standard_normal(n)
    b, a = butter(2, min(0.95, cutoff_hz / (sample_rate / 2)), btype="low")
    scuff = lfilter(b, a, noise) * np.exp(-np.arange(n) / (rng.uniform(0.02, 0.045) * sample_rate))
    thud = modal([rng.uniform(60, 110)], [1.0], [0.03], n / sample_rate, sample_rate)
    out = scuff / max(1e-6, np.abs(scuff).max()) + 0.6 * thud
    out = out.astype(np.float32) * _attack(n, sample_rate, 0.001)
    return out / max(1e-6, np.abs(out).max())


def chirp(rng: np.random.Generator, f_start: float, f_end: float, length_s: float, sample_rate: int) -> np.ndarray:
    """A bird chirp / whistle: an FM sweep f_start -> f_end with vibrato and a fast attack."""
    n = max(16, int(length_s * sample_rate))
    u = np.arange(n) / n
    vib = 1 + 0.04 * np.sin(2 * np.pi * rng.uniform(20, 40) * u * length_s)
    freq = (f_start + (f_end - f_start) * u ** rng.uniform(0.5, 2.0)) * vib
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    # Fast attack (a sharp onset), smooth raised-cosine tail (a soft offset).
    env = np.minimum(1.0, u * n / (0.003 * sample_rate)) * _release(n, 0.5)
    out = env * (np.sin(phase) + 0.25 * np.sin(2 * phase))
    return (out / max(1e-6, np.abs(out).max())).astype(np.float32)


def beep(freq: float, length_s: float, sample_rate: int) -> np.ndarray:
    """An electronic beep: a sine with a 3 ms attack and a 30 ms soft release, lasting length_s."""
    n = max(16, int(round(length_s * sample_rate)))
    t = np.arange(n) / sample_rate
    release = np.clip((t[-1] - t) / 0.03, 0.0, 1.0)
    env = np.minimum(1.0, t / 0.003) * (0.5 - 0.5 * np.cos(np.pi * release))
    return (env * (0.85 * np.sin(2 * np.pi * freq * t) + 0.15 * np.sin(6 * np.pi * freq * t))).astype(np.float32)


def engine(rng: np.random.Generator, f_fire: float, rel_x: np.ndarray, depth: float,
           metres_per_width: float, sample_rate: int) -> np.ndarray:
    """An engine passing by: firing harmonics with Doppler and 1/distance level -> [len(rel_x)].

    rel_x: the source's horizontal offset from the listener per sample, in frame widths;
    depth: its distance in front of the listener (frame widths). The speed of sound is 343 m/s.
    """
    x_m = rel_x * metres_per_width
    dist = np.sqrt(x_m ** 2 + (depth * metres_per_width) ** 2)
    radial = np.gradient(dist) * sample_rate  # m/s, positive while receding
    f_obs = f_fire * 343.0 / (343.0 + radial)
    phase = 2 * np.pi * np.cumsum(f_obs) / sample_rate
    harm = np.arange(1, 9)
    amps = rng.uniform(0.5, 1.0, harm.size) / harm ** rng.uniform(0.6, 1.2)
    tone = (amps[:, None] * np.sin(harm[:, None] * phase[None, :] + rng.uniform(0, 6.3, (harm.size, 1)))).sum(0)
    rough = 1 + 0.3 * np.sin(phase / 2)  # the uneven firing of a real engine
    gain = (depth * metres_per_width) / dist
    out = tone * rough * gain
    return (out / max(1e-6, np.abs(out).max())).astype(np.float32)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit peak -> [n]."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    out = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (out / max(1e-9, np.abs(out).max())).astype(np.float32)


def place(track: np.ndarray, sound: np.ndarray, time_s: float, sample_rate: int, gain: float = 1.0) -> None:
    """Add `sound` into `track` [..., N] starting at sample round(time_s·sr), cut at the end."""
    start = int(round(time_s * sample_rate))
    if start >= track.shape[-1]:
        return
    stop = min(track.shape[-1], start + sound.shape[-1])
    track[..., start:stop] += gain * sound[..., : stop - start]


def pan_stereo(mono: np.ndarray, x) -> np.ndarray:
    """Mono [N] + on-screen x in [0,1] (scalar or [N]) -> constant-power stereo float32 [2, N]."""
    theta = np.clip(np.asarray(x, np.float64), 0.0, 1.0) * (np.pi / 2)
    # 0 -> hard left, 0.5 -> centre at -3 dB per channel, 1 -> hard right; L²+R² = mono².
    return np.stack([mono * np.cos(theta), mono * np.sin(theta)]).astype(np.float32)
