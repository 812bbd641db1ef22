"""The reference end-to-end path: video (+ text) in, synchronized stereo audio out.

Every stage is a plain function over explicit components, so the CLI, the ComfyUI nodes and the
tests run the same code, and changing sampler settings never re-runs the encoders:

    open_video → encode_text / encode_video → sample_latents → decode_mel → to_stereo → vocode

Shapes: B batch, La audio tokens, Lv visual tokens, Ls sync tokens, Lt text tokens, C latent
channels, M mel bins, F mel frames, T samples. Output length is exactly round(duration · sr).
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .codec.bundle import AudioCodec, fit_samples
from .components import Components, DiT, TextEncoder, VisualEncoders, load_components
from .config import CODEC_PRESETS, SeqConfig

__all__ = ["VideoClip", "TextCondition", "VideoCondition", "Latents", "Mel", "Audio", "open_video",
           "encode_text", "encode_video", "sample_latents", "sample_once", "decode_mel", "to_stereo", "vocode",
           "FoleyPipeline", "load_pipeline", "load_components", "DEFAULT_TEXT_DURATION"]

log = logging.getLogger(__name__)

DEFAULT_TEXT_DURATION = 8.0  # seconds, when there is no video to take the duration from
_EPS = 1e-6


# ---------------------------------------------------------------- stage values
@dataclass(frozen=True)
class VideoClip:
    """A video handle: a file (`path`) or frames (`images` [N,H,W,3]) with their `fps`."""

    duration: float
    fps: float
    path: Path | None = None
    images: torch.Tensor | None = None
    timestamps: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.images is None):
            raise ValueError("VideoClip holds either a file path or an IMAGE batch")


@dataclass(frozen=True)
class TextCondition:
    feats: torch.Tensor | None            # 1 Lt Dt (None = no prompt: the learned empty e_t)
    mask: torch.Tensor | None             # 1 Lt bool
    neg_feats: torch.Tensor | None        # negative prompt, or None (empty)
    neg_mask: torch.Tensor | None
    prompt: str = ""
    negative_prompt: str = ""


@dataclass(frozen=True)
class VideoCondition:
    visual: torch.Tensor                  # 1 Lv Dv
    sync: torch.Tensor                    # 1 Ls Ds
    duration: float
    # the encoders and clip these came from, so a long clip can be re-encoded window by window,
    # and those windows' conditions (cached: re-sampling with other settings re-encodes nothing)
    source: tuple | None = field(default=None, compare=False, repr=False)
    windows: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Latents:
    z: torch.Tensor                       # B La C, normalised latent space
    seq: SeqConfig
    latent_mean: torch.Tensor | None = None  # C: the network's normalisation (travels with its latents)
    latent_std: torch.Tensor | None = None


@dataclass(frozen=True)
class Mel:
    mel: torch.Tensor                     # B Ch M F log-mel (Ch 1 mono, 2 stereo)
    seq: SeqConfig


@dataclass(frozen=True)
class Audio:
    waveform: torch.Tensor                # B Ch T float32 in [-1, 1], T = seq.samples
    sample_rate: int


# ---------------------------------------------------------------- stages
def open_video(source, fps: float | None = None, *, timestamps=None) -> VideoClip:
    """File path, or IMAGE batch [N,H,W,3] + fps (or per-frame timestamps) -> VideoClip."""
    if isinstance(source, VideoClip):
        return source
    if isinstance(source, torch.Tensor):
        n = int(source.shape[0]) if source.ndim == 4 else 0
        if source.ndim != 4 or source.shape[-1] != 3 or n == 0:
            raise ValueError(f"expected video frames as an IMAGE batch [N,H,W,3], got {tuple(source.shape)}")
        if timestamps is not None:
            ts = tuple(float(t) for t in timestamps)
            if len(ts) != n:
                raise ValueError(f"{len(ts)} timestamps for {n} frames: give one per frame")
            step = (1.0 / fps) if fps else (ts[-1] - ts[0]) / max(n - 1, 1)
            return VideoClip(duration=ts[-1] - ts[0] + step, fps=n / (ts[-1] - ts[0] + step),
                             images=source, timestamps=ts)
        if fps is None or not fps > 0 or not math.isfinite(fps):
            raise ValueError(f"frames need their frame rate: got fps={fps!r}. Give the rate the video was "
                             "made at (Wan 16, LTX 24/25, HunyuanVideo 24) — never assumed")
        return VideoClip(duration=n / float(fps), fps=float(fps), images=source)
    if isinstance(source, (str, os.PathLike)):
        from .io import probe
        info = probe(source)
        return VideoClip(duration=info.duration, fps=info.fps, path=Path(source))
    raise TypeError(f"open_video takes a file path or an IMAGE tensor, not {type(source).__name__}")


def encode_text(text_encoder: TextEncoder, prompt: str = "", negative_prompt: str = "") -> TextCondition:
    """Prompt strings -> TextCondition (empty strings use the model's learned empty text)."""
    feats = mask = neg = neg_mask = None
    if prompt.strip():
        feats, mask = text_encoder.encode([prompt])
    if negative_prompt.strip():
        neg, neg_mask = text_encoder.encode([negative_prompt])
    return TextCondition(feats, mask, neg, neg_mask, prompt, negative_prompt)


def encode_video(encoders: VisualEncoders, clip: VideoClip, *, duration: float | None = None,
                 start: float = 0.0, check_cancel: Callable[[], None] | None = None) -> VideoCondition:
    """VideoClip -> visual features [1,Lv,Dv] (8 fps) and sync features [1,Ls,Ds] (25 fps), taken
    by presentation time over `duration` seconds from `start` (default: the whole video)."""
    from .io import frames_from_images, sample_streams, streams_for
    duration = clip.duration - start if duration is None else float(duration)
    if start < 0 or start + duration > clip.duration + 1e-3:
        raise ValueError(f"{start:.3f} s + {duration:.3f} s reaches past the end of the video "
                         f"({clip.duration:.3f} s); leave the duration empty to use the video's length")
    seq = SeqConfig(duration)
    streams = streams_for(seq, visual_size=encoders.visual_input_size, sync_size=encoders.sync_input_size,
                          sync_mode=encoders.sync_resize)
    if clip.path is not None:
        frames = sample_streams(clip.path, streams, duration=duration, start=start, check_cancel=check_cancel)
    else:
        frames = {name: frames_from_images(clip.images, clip.fps if clip.timestamps is None else None,
                                           spec.fps, size=spec.size, mode=spec.mode, count=spec.count,
                                           duration=duration, start=start, timestamps=clip.timestamps,
                                           min_count=spec.min_count)
                  for name, spec in streams.items()}
    if check_cancel is not None:
        check_cancel()
    for name, spec in streams.items():
        frames[name] = _hold_last(frames[name], spec.count, name, clip)
    visual, sync = encoders.encode(frames["visual"], frames["sync"])
    return VideoCondition(visual=visual, sync=sync, duration=duration, source=(encoders, clip))


def _hold_last(frames: torch.Tensor, count: int, name: str, clip: VideoClip) -> torch.Tensor:
    """A stream that decoded up to 2 frames short (a truncated file's tail) holds its last frame;
    more is an error, since the audio would be timed against pictures that are not there."""
    missing = count - frames.shape[0]
    if missing <= 0:
        return frames
    if missing > 2 or frames.shape[0] == 0:
        where = clip.path.name if clip.path is not None else "the IMAGE batch"
        raise ValueError(f"{where} ended early: {frames.shape[0]} of {count} {name} frames could be decoded "
                         f"(the file may be truncated); re-encode it, or set a shorter duration")
    return torch.cat([frames, frames[-1:].expand(missing, *frames.shape[1:])])


def _expand(x: torch.Tensor | None, b: int) -> torch.Tensor | None:
    return None if x is None else x.expand(b, *x.shape[1:])


def sample_latents(dit: DiT, *, text: TextCondition | None = None, video: VideoCondition | None = None,
                   duration: float | None = None, steps: int = 20, sampler: str = "euler",
                   schedule: str = "uniform", cfg: float = 4.5, shift: float | None = None, seed: int = 0,
                   batch_size: int = 1, callback=None, window: float | None = None, overlap: float = 1.0,
                   check_cancel=None) -> Latents:
    """Conditions -> audio latents [B,La,C] by flow matching from seeded Gaussian noise.

    The duration is the video's; without a video it is `duration` (default 8 s). The noise is
    drawn on the CPU from `seed` so every device starts from the same noise. Clips longer than
    `window` seconds (default: the longest the model takes in one pass) are sampled in windows
    overlapping by `overlap` seconds (`kf_core.long_video`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if video is not None:
        if duration is not None and abs(duration - video.duration) > 1e-3:
            raise ValueError(f"duration {duration:.3f} s differs from the encoded video's {video.duration:.3f} s; "
                             "the video sets the duration (encode the video again with a duration to change it)")
        duration = video.duration
    duration = DEFAULT_TEXT_DURATION if duration is None else float(duration)
    knobs = dict(steps=steps, sampler=sampler, schedule=schedule, cfg=cfg, shift=shift, seed=seed,
                 batch_size=batch_size, callback=callback)
    window = dit.max_duration if window is None else window
    if window is not None and duration > window + _EPS:
        from .long_video import sample_long_latents
        return sample_long_latents(dit, text=text, video=video, duration=duration, window=window,
                                   overlap=overlap, check_cancel=check_cancel, **knobs)
    return sample_once(dit, text=text, video=video, duration=duration, **knobs)


def sample_once(dit: DiT, *, text: TextCondition | None, video: VideoCondition | None, duration: float,
                steps: int, sampler: str, schedule: str, cfg: float, shift: float | None, seed: int,
                batch_size: int, callback=None, seconds_start: float = 0.0, seconds_total: float | None = None,
                noise: torch.Tensor | None = None) -> Latents:
    """One pass of the flow network over `duration` seconds (at most the model's limit).

    `seconds_start`/`seconds_total` place this clip inside a longer one (the duration embeddings,
    paper §4.2); `noise` [B,La,C] replaces the seeded start noise.
    """
    from .sampling import cfg_velocity, get_sampler, get_schedule
    model, mcfg = dit.model, dit.model.cfg
    limit = dit.max_duration
    if limit is not None and duration > limit + _EPS:
        raise ValueError(f"{duration:.2f} s is longer than this model handles in one pass ({limit:g} s); "
                         "sample it in windows (window=...), or use a model trained on longer clips")
    seq = SeqConfig.for_codec(duration, CODEC_PRESETS[mcfg.codec])
    b = batch_size
    vis = _expand(video.visual, b) if video is not None else None
    syn = _expand(video.sync, b) if video is not None else None
    t_feats = _expand(text.feats, b) if text is not None else None
    t_mask = _expand(text.mask, b) if text is not None else None
    if not mcfg.text_attention_mask:
        t_mask = None
    with torch.inference_mode():
        when = dict(seconds_start=seconds_start, seconds_total=seconds_total)
        cond = model.prepare(seq=seq, visual=vis, sync=syn, text=t_feats, text_mask=t_mask, batch_size=b, **when)
        neg = _expand(text.neg_feats, b) if text is not None else None
        neg_mask = _expand(text.neg_mask, b) if (text is not None and mcfg.text_attention_mask) else None
        uncond = model.prepare(seq=seq, text=neg, text_mask=neg_mask, batch_size=b, **when)
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        shape = (b, seq.latent_len, mcfg.latent_dim)
        if noise is None:
            x0 = torch.randn(shape, generator=gen, dtype=torch.float32)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise must be {list(shape)} for {duration:.3f} s, got {list(noise.shape)}")
        else:
            x0 = noise.float()
        p = next(model.parameters())
        x0 = x0.to(device=p.device, dtype=p.dtype)
        ts = get_schedule(schedule, steps, **({} if shift is None else {"shift": shift})).to(p.device)
        fn = cfg_velocity(model, cond, uncond, cfg)
        z = get_sampler(sampler)(fn, x0, ts, callback=callback, generator=gen)
    return Latents(z=z.float(), seq=seq, latent_mean=dit.info.latent_mean, latent_std=dit.info.latent_std)


def decode_mel(codec: AudioCodec, latents: Latents) -> Mel:
    """Normalised latents [B,La,C] -> mono log-mel [B,1,M,F] (un-normalise, Mel-VAE decode)."""
    with torch.inference_mode():
        mel = codec.latents_to_mel(latents.z, latent_mean=latents.latent_mean,
                                   latent_std=latents.latent_std)             # B M F
    return Mel(mel=mel[:, None].float(), seq=latents.seq)


def to_stereo(codec: AudioCodec, mel: Mel, video: VideoCondition | None = None) -> Mel:
    """Mono log-mel [B,1,M,F] -> stereo [B,2,M,F] by Mono2Stereo (energy-preserving pan), following the
    video's image features or sync tokens, whichever the module was trained on."""
    if mel.mel.shape[1] == 2:
        return mel
    if mel.mel.shape[1] != 1:
        raise ValueError(f"to_stereo expects a mono mel [B,1,M,F], got {tuple(mel.mel.shape)}")
    visual = None
    if video is not None:  # the features the module was trained on: image frames or sync tokens
        m2s = codec.mono2stereo
        feats = video.sync if m2s is not None and m2s.cfg.cond == "sync" else video.visual
        visual = feats.expand(mel.mel.shape[0], -1, -1)
    with torch.inference_mode():
        stereo = codec.to_stereo(mel.mel[:, 0], visual)                # B 2 M F
    return replace(mel, mel=stereo.float())


def vocode(codec: AudioCodec, mel: Mel) -> Audio:
    """Log-mel [B,Ch,M,F] -> waveform [B,Ch,T] float32 in [-1,1], T = round(duration·sr) exactly."""
    with torch.inference_mode():
        wave = codec.vocode(mel.mel)                                         # B Ch T'
    wave = fit_samples(wave.float(), mel.seq.samples)                          # B Ch T
    return Audio(waveform=wave.clamp(-1, 1).contiguous(), sample_rate=codec.sample_rate)


# ---------------------------------------------------------------- bundle
class FoleyPipeline:
    """Components + the stages chained: `generate(video, prompt, ...) -> (waveform [C,T], sr)`."""

    def __init__(self, components: Components) -> None:
        self.components = components

    @property
    def sample_rate(self) -> int:
        return self.components.codec.sample_rate

    def generate(self, video=None, prompt: str = "", negative_prompt: str = "", duration: float | None = None,
                 steps: int = 20, sampler: str = "euler", schedule: str = "uniform", cfg: float = 4.5,
                 seed: int = 0, stereo: bool = True, *, fps: float | None = None, shift: float | None = None,
                 batch_size: int = 1, window: float | None = None, overlap: float = 1.0, callback=None,
                 check_cancel=None) -> tuple[torch.Tensor, int]:
        """Video (path or IMAGE [N,H,W,3] + fps, optional) and prompt -> (waveform [C,T], sample_rate).

        With a video the audio lasts exactly the video (or `duration`, if shorter); without one,
        `duration` seconds (default 8). Clips longer than `window` seconds (default: the longest
        the model takes in one pass) are generated in windows overlapping by `overlap` seconds.
        With batch_size > 1 the waveform is [B,C,T].
        """
        c = self.components
        text = encode_text(c.text_encoder, prompt, negative_prompt)
        vcond = None
        if video is not None:
            vcond = encode_video(c.visual_encoders, open_video(video, fps), duration=duration,
                                 check_cancel=check_cancel)
            duration = None
        lat = sample_latents(c.dit, text=text, video=vcond, duration=duration, steps=steps, sampler=sampler,
                             schedule=schedule, cfg=cfg, shift=shift, seed=seed, batch_size=batch_size,
                             callback=callback, window=window, overlap=overlap, check_cancel=check_cancel)
        mel = decode_mel(c.codec, lat)
        if stereo:
            mel = to_stereo(c.codec, mel, vcond)
        audio = vocode(c.codec, mel)
        wave = audio.waveform[0] if batch_size == 1 else audio.waveform
        return wave, audio.sample_rate

    def mux(self, video, waveform: torch.Tensor, sample_rate: int, out_path, *, fps: float | None = None) -> Path:
        """Write `waveform` [C,T] into a copy of `video` (file: remux; frames: encode) -> the new path."""
        from .io import mux_audio
        return mux_audio(video, waveform, sample_rate, out_path, fps=fps)


def load_pipeline(name_or_dir=None, device=None, dtype=None) -> FoleyPipeline:
    """None / "kf-tiny" -> the bundled kf-tiny; a folder -> the components it holds."""
    return FoleyPipeline(load_components(name_or_dir, device=device, dtype=dtype))
