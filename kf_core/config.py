"""Frozen configuration dataclasses shared by every part of the engine.

- `SeqConfig`: every sequence length derived from a duration (audio latents, visual frames,
  sync tokens, samples). Duration is an argument, never model state.
- `CodecConfig`: the mel front end and latent rates of an audio codec.
- `ModelConfig` and `PRESETS` live in `kf_core.model.config` and are re-exported here.

Time and rate conventions (the 44.1 kHz codec): one audio latent token per 1024 samples
(mel hop 512, the Mel-VAE halves the frame count) = 43.07 Hz; visual frames at 8 fps; sync
frames at 25 fps cut into 16-frame segments with stride 8, 8 tokens per segment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SeqConfig", "CodecConfig", "CODEC_PRESETS", "ModelConfig", "PRESETS"]


@dataclass(frozen=True)
class CodecConfig:
    """Mel front end + latent layout of an audio codec.

    `log` is the compression: "ln" (natural log, 44.1 kHz BigVGAN-v2 / MMAudio 44k) or
    "log10" (MMAudio 16k). Magnitudes are clamped to `log_floor` before the log.
    """

    sample_rate: int = 44100
    n_fft: int = 2048
    hop: int = 512
    win: int = 2048
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None  # None -> sample_rate / 2
    log: str = "ln"
    log_floor: float = 1e-5
    latent_channels: int = 40
    latent_downsample: int = 2  # mel frames per latent token

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.hop <= 0 or self.n_fft <= 0 or self.win <= 0:
            raise ValueError(
                f"CodecConfig needs positive sample_rate/n_fft/hop/win, got "
                f"{self.sample_rate}/{self.n_fft}/{self.hop}/{self.win}")
        if self.win > self.n_fft:
            raise ValueError(f"CodecConfig: win ({self.win}) must be <= n_fft ({self.n_fft})")
        if self.log not in ("ln", "log10"):
            raise ValueError(f"CodecConfig.log must be 'ln' or 'log10', got {self.log!r}")
        if self.n_mels <= 0 or self.latent_channels <= 0 or self.latent_downsample <= 0:
            raise ValueError("CodecConfig: n_mels, latent_channels and latent_downsample must be positive")
        top = self.sample_rate / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < top <= self.sample_rate / 2:
            raise ValueError(
                f"CodecConfig: need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin}, "
                f"fmax={top}, sample_rate={self.sample_rate}")

    @property
    def mel_fmax(self) -> float:
        return self.sample_rate / 2 if self.fmax is None else self.fmax

    @property
    def samples_per_latent(self) -> int:
        return self.hop * self.latent_downsample

    @property
    def latent_rate(self) -> float:
        """Audio latent tokens per second (43.07 Hz for 44.1 kHz / 1024)."""
        return self.sample_rate / self.samples_per_latent


CODEC_PRESETS: dict[str, CodecConfig] = {
    "44k": CodecConfig(),
    "16k": CodecConfig(sample_rate=16000, n_fft=1024, hop=256, win=1024, n_mels=80,
                       fmax=8000.0, log="log10", latent_channels=20),
}


@dataclass(frozen=True)
class SeqConfig:
    """All sequence lengths for one generation, derived from `duration` seconds.

    The formulas reproduce MMAudio's sequence config exactly (float maths in the same order),
    so checkpoints trained with it see the lengths they were trained on:
      latent_len = ceil(duration * sample_rate / hop / latent_downsample)
      visual_len = int(duration * visual_fps)
      sync_len   = sync_tokens * ((duration * sync_fps - sync_segment) // sync_stride + 1)
    `samples` is the exact output length, round(duration * sample_rate); the decoder produces
    `decoded_samples` >= samples and the pipeline trims to `samples`.
    """

    duration: float
    sample_rate: int = 44100
    hop: int = 512
    latent_downsample: int = 2
    visual_fps: float = 8.0
    sync_fps: float = 25.0
    sync_segment: int = 16
    sync_stride: int = 8
    sync_tokens: int = 8  # tokens per sync segment

    def __post_init__(self) -> None:
        if not (isinstance(self.duration, (int, float)) and math.isfinite(self.duration)):
            raise ValueError(f"duration must be a finite number of seconds, got {self.duration!r}")
        min_dur = self.min_duration
        if self.duration < min_dur:
            raise ValueError(
                f"duration {self.duration:.3f} s is shorter than one sync segment "
                f"({self.sync_segment} frames at {self.sync_fps:g} fps = {min_dur:.2f} s); "
                f"give a clip of at least {min_dur:.2f} s")
        if self.sample_rate <= 0 or self.hop <= 0 or self.latent_downsample <= 0:
            raise ValueError("SeqConfig: sample_rate, hop and latent_downsample must be positive")
        if self.visual_fps <= 0 or self.sync_fps <= 0:
            raise ValueError(f"SeqConfig: frame rates must be positive, got "
                             f"visual_fps={self.visual_fps}, sync_fps={self.sync_fps}")

    @classmethod
    def for_codec(cls, duration: float, codec: CodecConfig, **kw) -> "SeqConfig":
        return cls(duration=duration, sample_rate=codec.sample_rate, hop=codec.hop,
                   latent_downsample=codec.latent_downsample, **kw)

    @property
    def min_duration(self) -> float:
        return self.sync_segment / self.sync_fps

    @property
    def latent_len(self) -> int:  # La
        return int(math.ceil(self.duration * self.sample_rate / self.hop / self.latent_downsample))

    @property
    def mel_len(self) -> int:
        return self.latent_len * self.latent_downsample

    @property
    def visual_len(self) -> int:  # Lv
        return int(self.duration * self.visual_fps)

    @property
    def sync_segments(self) -> int:
        return int((self.duration * self.sync_fps - self.sync_segment) // self.sync_stride + 1)

    @property
    def sync_frames(self) -> int:
        """Frames at `sync_fps` the sync encoder reads (the last segment's end)."""
        return (self.sync_segments - 1) * self.sync_stride + self.sync_segment

    @property
    def sync_len(self) -> int:  # Ls
        return self.sync_tokens * self.sync_segments

    @property
    def samples(self) -> int:
        """Exact output length in samples: round(duration * sample_rate)."""
        return int(round(self.duration * self.sample_rate))

    @property
    def decoded_samples(self) -> int:
        """Samples the decoder produces for `latent_len` tokens (>= samples)."""
        return self.latent_len * self.hop * self.latent_downsample

    @property
    def latent_rate(self) -> float:
        return self.sample_rate / (self.hop * self.latent_downsample)


def __getattr__(name: str):
    # ModelConfig / PRESETS are owned by kf_core.model.config; re-exported lazily so that
    # importing this module never builds anything heavy.
    if name in ("ModelConfig", "PRESETS"):
        from .model import config as _model_config
        return getattr(_model_config, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
