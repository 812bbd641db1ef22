"""The reference end-to-end path: video (+ text) in, synchronized stereo audio out.

Every stage is a plain function over explicit components, so the CLI, the ComfyUI nodes and the
tests run the same code, and changing sampler settings never re-runs the encoders:

    open_video → encode_text / encode_video → sample_latents → decode_mel → to_stereo → vocode
    → watermark (on by default in generate/save and the Vocoder node; kf_core.watermark)

Shapes: B batch, La audio tokens, Lv visual tokens, Ls sync tokens, Lt text tokens, C latent
channels, M mel bins, F mel frames, T samples. Output length is exactly round(duration · sr).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .codec.bundle import AudioCodec, fit_samples
from .codec.limiter import set_level
from .components import Components, DiT, TextEncoder, VisualEncoders, load_components
from .config import CODEC_PRESETS, SeqConfig
from .errors import UserError
from .heap import release_free_memory
from .long_video import Window, long_noise, plan_windows, window_condition
from .sampling.longform import sample_long
from .validate import check_fps, check_generation

__all__ = ["VideoClip", "TextCondition", "VideoCondition", "Latents", "Mel", "Audio", "open_video",
           "encode_text", "encode_video", "sample_latents", "sample_once", "decode_mel", "to_stereo", "vocode",
           "stream_audio", "Watermark", "watermark_audio",
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
    notes: tuple[str, ...] = ()           # warnings for the user (e.g. a prompt cut at the token limit)


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
        rate = check_fps(fps)
        if rate is None:
            raise UserError("frames need their frame rate and none was given: set fps to the rate the video "
                            "was made at (Wan 16, LTX 24/25, HunyuanVideo 24) or connect video_info — it is "
                            "never assumed")
        return VideoClip(duration=n / rate, fps=rate, images=source)
    if isinstance(source, (str, os.PathLike)):
        from .io import probe
        info = probe(source)
        return VideoClip(duration=info.duration, fps=info.fps, path=Path(source))
    raise TypeError(f"open_video takes a file path or an IMAGE tensor, not {type(source).__name__}")


def encode_text(text_encoder: TextEncoder, prompt: str = "", negative_prompt: str = "", *,
                empty: str | None = None) -> TextCondition:
    """Prompt strings -> TextCondition.

    An empty prompt / negative prompt becomes, by `empty` (default: the text encoder's
    `empty_policy`): "encode" -> the encoded '' (MMAudio's inference: CLIP(''), cached per text
    encoder, for the prompt and for the unconditional branch), or "learned" -> None, i.e. the
    network's learned empty text (Kling-Foley's e_t; MMAudio's stored `empty_string_feat`).
    """
    empty = text_encoder.empty_policy if empty is None else empty
    if empty not in ("encode", "learned"):
        raise ValueError(f"empty must be 'encode' (encode '') or 'learned' (the model's empty text), got {empty!r}")
    feats = mask = neg = neg_mask = None
    notes = tuple(note for note in (_truncation(text_encoder, "prompt", prompt),
                                    _truncation(text_encoder, "negative prompt", negative_prompt)) if note)
    for note in notes:
        log.warning(note)
    if prompt.strip():
        feats, mask = text_encoder.encode([prompt])
    elif empty == "encode":
        feats, mask = text_encoder.empty()
    if negative_prompt.strip():
        neg, neg_mask = text_encoder.encode([negative_prompt])
    elif empty == "encode":
        neg, neg_mask = text_encoder.empty()
    return TextCondition(feats, mask, neg, neg_mask, prompt, negative_prompt, notes)


def _truncation(text_encoder: TextEncoder, what: str, text: str) -> str | None:
    """A warning when `text` has more tokens than the encoder reads (the rest is silently cut), else None."""
    if not text.strip():
        return None
    enc = text_encoder.encoder
    n, limit = enc.count_tokens(text), enc.max_tokens
    if n <= limit:
        return None
    cut = max(1, round(len(text) * (limit - 1) / max(n - 1, 1)))
    return (f"the {what} is {n} tokens long, but this text encoder reads only {limit}: everything after about "
            f"character {cut} (\"...{text[max(0, cut - 20):cut]}\") is ignored — shorten it")


def encode_video(encoders: VisualEncoders, clip: VideoClip, *, duration: float | None = None,
                 start: float = 0.0, check_cancel: Callable[[], None] | None = None,
                 pad_end: float = 0.0) -> VideoCondition:
    """VideoClip -> visual features [1,Lv,Dv] (8 fps) and sync features [1,Ls,Ds] (25 fps), taken
    by presentation time over `duration` seconds from `start` (default: the whole video), with the
    encoders' frame-timing policy (`encoders.timing`, kf_core.io.frames).

    Up to `pad_end` seconds past the end of the video hold its last frame (a network run padded to
    whole sync segments). Clips longer than CHUNK_SECONDS are decoded and encoded a piece at a
    time on one frame clock: the same frames and features as one pass, with bounded memory (not
    for sync encoders whose input spans segments, `segments_independent`).
    """
    duration = clip.duration - start if duration is None else float(duration)
    if start < 0 or start + duration > clip.duration + max(1e-3, pad_end):
        raise ValueError(f"{start:.3f} s + {duration:.3f} s reaches past the end of the video "
                         f"({clip.duration:.3f} s); leave the duration empty to use the video's length")
    from .io import streams_for
    seq = SeqConfig(duration)
    streams = streams_for(seq, visual_size=encoders.visual_input_size, sync_size=encoders.sync_input_size,
                          sync_mode=encoders.sync_resize, timing=encoders.timing)
    visual, sync = [], []
    for chunk in (_chunks(streams, seq) if encoders.segments_independent else [streams]):
        frames = _sample(clip, chunk, duration=duration, start=start, check_cancel=check_cancel)
        if check_cancel is not None:
            check_cancel()
        for name, spec in chunk.items():
            frames[name] = _hold_last(frames[name], spec.count, name, clip, extra=math.ceil(pad_end * spec.fps))
        v, s = encoders.encode(frames["visual"], frames["sync"])            # 1 n Dv, 1 m Ds
        visual.append(v)
        sync.append(s)
        del frames
        release_free_memory()
    return VideoCondition(visual=torch.cat(visual, 1), sync=torch.cat(sync, 1), duration=duration,
                          source=(encoders, clip))


CHUNK_SECONDS = 8.0  # longer clips are encoded in pieces of about this length (24 sync segments)


def _chunks(streams: dict, seq: SeqConfig) -> list[dict]:
    """Whole-clip {"visual", "sync"} StreamSpecs -> per-piece specs on the same clocks (`skip`):
    pieces of 24 sync segments (16 + 23·8 frames, sharing 8 with the next piece) and 64 visual
    frames, so the pieces' segments and frames are exactly the single pass's."""
    vis, syn = streams["visual"], streams["sync"]
    per_seg = int(CHUNK_SECONDS * seq.sync_fps - seq.sync_segment) // seq.sync_stride + 1   # 24
    segments = seq.sync_segments
    n = max(1, math.ceil(segments / per_seg))
    if n == 1:
        return [streams]

    def visual_at(s: int) -> int:
        """The first visual frame at or after sync segment s's start (a piece's frames share its time span;
        a piece of 24 segments spans 7.68 s, so counting 64 visual frames per piece would run out first)."""
        return min(vis.count, math.ceil(s * seq.sync_stride * seq.visual_fps / seq.sync_fps - 1e-9))

    out = []
    for j in range(n):
        s0, s1 = j * per_seg, min(segments, (j + 1) * per_seg)
        v0 = visual_at(s0)
        v1 = vis.count if j == n - 1 else visual_at(s1)
        out.append({"visual": replace(vis, count=v1 - v0, skip=v0),
                    "sync": replace(syn, count=(s1 - s0 - 1) * seq.sync_stride + seq.sync_segment,
                                    skip=s0 * seq.sync_stride)})
    return out


def _sample(clip: VideoClip, streams: dict, *, duration: float, start: float, check_cancel) -> dict:
    from .io import frames_from_images, sample_streams
    if clip.path is not None:
        return sample_streams(clip.path, streams, duration=duration, start=start, check_cancel=check_cancel)
    return {name: frames_from_images(clip.images, clip.fps if clip.timestamps is None else None,
                                     spec.fps, size=spec.size, mode=spec.mode, count=spec.count,
                                     duration=duration, start=start, timestamps=clip.timestamps,
                                     min_count=min(spec.min_count, spec.count), timing=spec.timing,
                                     skip=spec.skip)
            for name, spec in streams.items()}


def _hold_last(frames: torch.Tensor, count: int, name: str, clip: VideoClip, extra: int = 0) -> torch.Tensor:
    """A stream that decoded up to 2 (+ `extra`, for a padded end) frames short (a truncated
    file's tail) holds its last frame; more is an error, since the audio would be timed against
    pictures that are not there."""
    missing = count - frames.shape[0]
    if missing <= 0:
        return frames
    if missing > 2 + extra or frames.shape[0] == 0:
        where = clip.path.name if clip.path is not None else "the IMAGE batch"
        raise ValueError(f"{where} ended early: {frames.shape[0]} of {count} {name} frames could be decoded "
                         f"(the file may be truncated); re-encode it, or set a shorter duration")
    return torch.cat([frames, frames[-1:].expand(missing, *frames.shape[1:])])


def _expand(x: torch.Tensor | None, b: int) -> torch.Tensor | None:
    return None if x is None else x.expand(b, *x.shape[1:])


def sample_latents(dit: DiT, *, text: TextCondition | None = None, video: VideoCondition | None = None,
                   duration: float | None = None, steps: int | None = None, sampler: str = "euler",
                   schedule: str = "uniform", cfg: float | None = None, shift: float | None = None, seed: int = 0,
                   batch_size: int = 1, callback=None, window: float | None = None, overlap: float = 1.0,
                   check_cancel=None, noise: torch.Tensor | None = None) -> Latents:
    """Conditions -> audio latents [B,La,C] by flow matching from seeded Gaussian noise.

    The duration is the video's; without a video it is `duration` (default 8 s). `steps` / `cfg`
    None take the network's `sampling_defaults` (MMAudio 25 / 4.5, Kling-Foley 20 / 4.5). The
    noise is drawn on the CPU from `seed` so every device starts from the same noise (`noise`
    [B,La',C] replaces it for a single-pass clip, La' = the network length's tokens). Clips
    longer than `window` seconds (default: `dit.window`, MMAudio's trained 8 s or the longest a
    Kling-Foley model takes) are sampled in windows overlapping by at least `overlap` seconds
    (`kf_core.long_video`). An MMAudio network runs a shorter clip at `dit.network_duration`
    (whole sync segments, the video's last frame held) and the latents are trimmed back.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if video is not None:
        if duration is not None and abs(duration - video.duration) > 1e-3:
            raise ValueError(f"duration {duration:.3f} s differs from the encoded video's {video.duration:.3f} s; "
                             "the video sets the duration (encode the video again with a duration to change it)")
        duration = video.duration
    duration = DEFAULT_TEXT_DURATION if duration is None else float(duration)
    defaults = dit.sampling_defaults
    knobs = dict(steps=defaults.steps if steps is None else steps, sampler=sampler, schedule=schedule,
                 cfg=defaults.cfg if cfg is None else cfg, shift=shift, seed=seed, batch_size=batch_size,
                 callback=callback)
    window = dit.window if window is None else window
    if window is not None and duration > window + _EPS:
        if noise is not None:
            raise ValueError("noise= is for clips sampled in one pass; a windowed clip draws its noise from seed")
        return _sample_windows(dit, text=text, video=video, duration=duration, window=window,
                               overlap=overlap, check_cancel=check_cancel, **knobs)
    run = dit.network_duration(duration)
    if run <= duration + _EPS:
        return sample_once(dit, text=text, video=video, duration=duration, noise=noise, **knobs)
    part = None
    if video is not None:                                  # conditions for the padded length
        part = window_condition(video, Window(0, 0, 0, 0.0, run), _encode_span, check_cancel)
    lat = sample_once(dit, text=text, video=part, duration=run, noise=noise, **knobs)
    seq = SeqConfig.for_codec(duration, CODEC_PRESETS[dit.model.cfg.codec])
    return replace(lat, z=lat.z[:, :seq.latent_len].contiguous(), seq=seq)


def _encode_span(encoders, clip, start: float, span: float, pad_end: float, check_cancel) -> VideoCondition:
    return encode_video(encoders, clip, start=start, duration=span, pad_end=pad_end, check_cancel=check_cancel)


def _sample_windows(dit: DiT, *, text, video, duration: float, window: float, overlap: float, steps: int,
                    sampler: str, schedule: str, cfg: float, shift, seed: int, batch_size: int, callback=None,
                    check_cancel=None) -> Latents:
    """A clip longer than `window` s -> Latents [B,La,C] from crossfaded windows (kf_core.long_video).
    The callback sees one step count across all windows."""
    seq, windows = plan_windows(dit, duration, window, overlap)
    noise = long_noise(seq, batch_size, dit.model.cfg.latent_dim, seed)            # B La C
    by_start = {(w.start, w.length): w for w in windows}

    def one(start: int, length: int) -> torch.Tensor:
        w = by_start[(start, length)]
        part = None if video is None else window_condition(video, w, _encode_span, check_cancel)
        step_cb = None if callback is None else (
            lambda step, total, x, t: callback(w.index * total + step, total * len(windows), x, t))
        lat = sample_once(dit, text=text, video=part, duration=w.span, steps=steps, sampler=sampler,
                          schedule=schedule, cfg=cfg, shift=shift, seed=(seed + 1 + w.index) % 2 ** 64,
                          batch_size=batch_size, callback=step_cb, seconds_start=w.t0, seconds_total=duration,
                          noise=noise[:, start:start + length])
        return lat.z

    plan = [(w.start, w.length) for w in windows]
    z = sample_long(one, seq.latent_len, windows[0].length, 0, check_cancel=check_cancel, plan=plan)
    return Latents(z=z, seq=seq, latent_mean=dit.info.latent_mean, latent_std=dit.info.latent_std)


def sample_once(dit: DiT, *, text: TextCondition | None, video: VideoCondition | None, duration: float,
                steps: int | None = None, sampler: str = "euler", schedule: str = "uniform",
                cfg: float | None = None, shift: float | None = None, seed: int = 0, batch_size: int = 1,
                callback=None, seconds_start: float = 0.0, seconds_total: float | None = None,
                noise: torch.Tensor | None = None) -> Latents:
    """One pass of the flow network over `duration` seconds (at most the model's limit).

    `seconds_start`/`seconds_total` place this clip inside a longer one (the duration embeddings,
    paper §4.2); `noise` [B,La,C] replaces the seeded start noise; steps / cfg None take the
    network's `sampling_defaults`.
    """
    from .sampling import cfg_velocity, get_sampler, get_schedule
    model, mcfg = dit.model, dit.model.cfg
    steps = dit.sampling_defaults.steps if steps is None else steps
    cfg = dit.sampling_defaults.cfg if cfg is None else cfg
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
    visual = _stereo_features(codec, video, mel.mel.shape[0])
    with torch.inference_mode():
        stereo = codec.to_stereo(mel.mel[:, 0], visual)                # B 2 M F
    return replace(mel, mel=stereo.float())


def _stereo_features(codec: AudioCodec, video: VideoCondition | None, batch: int) -> torch.Tensor | None:
    """The video features Mono2Stereo was trained on (image frames or sync tokens) [B,L,D], or None."""
    if video is None:
        return None
    m2s = codec.mono2stereo
    feats = video.sync if m2s is not None and m2s.cfg.cond == "sync" else video.visual
    return feats.expand(batch, -1, -1)


def vocode(codec: AudioCodec, mel: Mel, *, level: str = "clip", ceiling_db: float = -1.0,
           watermark: Watermark | None = None) -> Audio:
    """Log-mel [B,Ch,M,F] -> waveform [B,Ch,T] float32 in [-1,1], T = round(duration·sr) exactly.

    `watermark` (None: none) is embedded before the level stage, so the level decides the peak
    and nothing passes the ceiling; the limiter's gain is smooth and the same in every band, which
    the detector cancels. `level` keeps it inside full scale (kf_core.codec.limiter): "clip" (hard
    clip at 0 dBFS), "limit" (peak limiter at `ceiling_db`) or "normalize" (each take's peak at
    `ceiling_db`)."""
    with torch.inference_mode():
        wave = codec.vocode(mel.mel)                                         # B Ch T'
    wave = fit_samples(wave.float(), mel.seq.samples)                          # B Ch T
    if watermark is not None:
        wave = watermark.embed(wave, codec.sample_rate, clip=False)
    wave = set_level(wave, codec.sample_rate, level, ceiling_db)
    return Audio(waveform=wave.contiguous(), sample_rate=codec.sample_rate)


def stream_audio(codec: AudioCodec, latents: Latents, video: VideoCondition | None = None, *,
                 stereo: bool = True, watermark: Watermark | None = None):
    """decode_mel -> to_stereo -> vocode (-> `watermark`, None: none) as one stream: waveform blocks
    [B,Ch,n] (CPU float32 in [-1, 1]) totalling round(duration·sr) samples; only a few chunks are
    alive at any time. The mark is the same, sample for sample, as `watermark_audio` of the whole."""
    visual = _stereo_features(codec, video, latents.z.shape[0]) if stereo else None
    blocks = codec.stream_waveform(latents.z, latent_mean=latents.latent_mean, latent_std=latents.latent_std,
                                   visual=visual, stereo=stereo, num_samples=latents.seq.samples)
    blocks = (b.float().cpu() for b in blocks)
    return blocks if watermark is None else watermark.stream(blocks, codec.sample_rate)


@dataclass(frozen=True)
class Watermark:
    """The inaudible mark a generation carries (kf_core.watermark): its payload records `model` (a
    name; None: not recorded) and the low 16 bits of `seed`, under `key` (None: the pack's public key)."""

    model: str | None = None
    seed: int | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        if self.key is not None and not (isinstance(self.key, str) and self.key.strip()):
            raise UserError(f"the watermark key must be a non-empty string, got {self.key!r} "
                            "(leave it out for the pack's public key)")

    def _spec(self):
        from .watermark import DEFAULT_KEY, Payload  # lazy, like .io: PyAV loads when audio is made
        return Payload.for_generation(self.model, self.seed), DEFAULT_KEY if self.key is None else self.key

    def embed(self, wave: torch.Tensor, sample_rate: int, *, clip: bool = True) -> torch.Tensor:
        """Waveform [..., T] -> marked [..., T] (in [-1, 1] unless clip=False)."""
        from .watermark import embed_watermark
        payload, key = self._spec()
        return embed_watermark(wave, sample_rate, payload, key=key, clip=clip)

    def stream(self, blocks, sample_rate: int):
        """Waveform blocks [..., n] -> marked blocks (boundaries move; ~0.4 s is held back), in [-1, 1]."""
        from .watermark import embed_stream
        payload, key = self._spec()
        return embed_stream(blocks, sample_rate, payload, key=key)


def watermark_audio(audio: Audio, *, model: str | None = None, seed: int | None = None,
                    key: str | None = None) -> Audio:
    """Audio -> the same audio with the inaudible spectral watermark (kf_core.watermark) embedded,
    its payload recording `model` (a name) and the low 16 bits of `seed`; `key` None = the pack's."""
    return replace(audio, waveform=Watermark(model, seed, key).embed(audio.waveform, audio.sample_rate))


# ---------------------------------------------------------------- bundle
class FoleyPipeline:
    """Components + the stages chained: `generate(video, prompt, ...) -> (waveform [C,T], sr)`,
    `save(video, out=, audio_out=, ...)` streams the sound into files (memory flat in length)."""

    def __init__(self, components: Components) -> None:
        self.components = components

    @property
    def sample_rate(self) -> int:
        return self.components.codec.sample_rate

    def _watermark(self, on: bool, key: str | None, seed: int) -> Watermark | None:
        if not on and key is not None:
            raise UserError("a watermark key was given with the watermark off: drop one of the two")
        return Watermark(self.components.name, seed, key) if on else None

    def _latents(self, video, prompt, negative_prompt, duration, steps, sampler, schedule, cfg, seed, *, fps,
                 shift, batch_size, window, overlap, callback, check_cancel, out=None, audio_out=None):
        """Every input checked, then text/video encoded and latents sampled -> (Latents, VideoCondition)."""
        c = self.components
        source, fps = _source_of(video, fps)
        check_generation(video=source, fps=fps, out=out, audio_out=audio_out, duration=duration, steps=steps,
                         cfg=cfg, seed=seed, sampler=sampler, schedule=schedule, shift=shift, window=window,
                         overlap=overlap, batch_size=batch_size, prompt=prompt, negative_prompt=negative_prompt)
        text = encode_text(c.text_encoder, prompt, negative_prompt)
        vcond = None
        if video is not None:
            vcond = encode_video(c.visual_encoders, open_video(video, fps), duration=duration,
                                 check_cancel=check_cancel)
            duration = None
        lat = sample_latents(c.dit, text=text, video=vcond, duration=duration, steps=steps, sampler=sampler,
                             schedule=schedule, cfg=cfg, shift=shift, seed=seed, batch_size=batch_size,
                             callback=callback, window=window, overlap=overlap, check_cancel=check_cancel)
        return lat, vcond

    def generate(self, video=None, prompt: str = "", negative_prompt: str = "", duration: float | None = None,
                 steps: int | None = None, sampler: str = "euler", schedule: str = "uniform", cfg: float | None = None,
                 seed: int = 0, stereo: bool = True, *, fps: float | None = None, shift: float | None = None,
                 batch_size: int = 1, window: float | None = None, overlap: float = 1.0, callback=None,
                 check_cancel=None, watermark: bool = True, watermark_key: str | None = None
                 ) -> tuple[torch.Tensor, int]:
        """Video (path or IMAGE [N,H,W,3] + fps, optional) and prompt -> (waveform [C,T], sample_rate).

        With a video the audio lasts exactly the video (or `duration`, if shorter); without one,
        `duration` seconds (default 8). steps / cfg None take the network's defaults (MMAudio 25 /
        4.5, Kling-Foley 20 / 4.5). Clips longer than `window` seconds (default: the network's
        window, MMAudio 8 s) are generated in windows overlapping by at least `overlap` seconds.
        With batch_size > 1 the waveform is [B,C,T]. The audio carries an inaudible watermark
        (model name + seed, under `watermark_key`) unless `watermark=False`. Every argument is
        checked first (`kf_core.validate`), so a mistake raises UserError before any encoding.
        """
        mark = self._watermark(watermark, watermark_key, seed)
        lat, vcond = self._latents(video, prompt, negative_prompt, duration, steps, sampler, schedule, cfg, seed,
                                   fps=fps, shift=shift, batch_size=batch_size, window=window, overlap=overlap,
                                   callback=callback, check_cancel=check_cancel)
        wave = torch.cat(list(stream_audio(self.components.codec, lat, vcond, stereo=stereo, watermark=mark)), dim=-1)
        return (wave[0] if batch_size == 1 else wave), self.sample_rate

    def save(self, video=None, prompt: str = "", negative_prompt: str = "", *, out=None, audio_out=None,
             stereo: bool = True, fps: float | None = None, duration: float | None = None, steps: int | None = None,
             sampler: str = "euler", schedule: str = "uniform", cfg: float | None = None, seed: int = 0,
             shift: float | None = None, window: float | None = None, overlap: float = 1.0, callback=None,
             check_cancel=None, watermark: bool = True, watermark_key: str | None = None) -> dict[str, Path]:
        """Like `generate`, but the sound is streamed into `audio_out` (.wav/.flac) and/or muxed into a
        copy of `video` at `out`, block by block -> {"audio": path, "video": path}. Both outputs are
        checked before anything runs; a failure or a signal leaves neither behind. The watermark is
        embedded block by block too: the same samples as `generate` writes."""
        from .io import AudioWriter, mux_audio
        if out is None and audio_out is None:
            raise UserError("nothing to write: give out= (a video, needs a video input) and/or audio_out= (.wav/.flac)")
        mark = self._watermark(watermark, watermark_key, seed)
        lat, vcond = self._latents(video, prompt, negative_prompt, duration, steps, sampler, schedule, cfg, seed,
                                   fps=fps, shift=shift, batch_size=1, window=window, overlap=overlap,
                                   callback=callback, check_cancel=check_cancel, out=out, audio_out=audio_out)
        blocks = (b[0] for b in stream_audio(self.components.codec, lat, vcond, stereo=stereo, watermark=mark))  # C n
        written: dict[str, Path] = {}
        with contextlib.ExitStack() as stack:
            if audio_out is not None:
                writer = stack.enter_context(AudioWriter(audio_out, self.sample_rate, check_cancel=check_cancel))
                blocks = _tee(blocks, writer.write)
            if out is not None:
                source, rate = _source_of(video, fps)
                written["video"] = mux_audio(source, blocks, self.sample_rate, out, fps=rate,
                                             check_cancel=check_cancel)
            for _ in blocks:  # the audio file gets every block, also past the video's end
                pass
        if audio_out is not None:
            written["audio"] = writer.path
        return written

    def mux(self, video, waveform: torch.Tensor, sample_rate: int, out_path, *, fps: float | None = None) -> Path:
        """Write `waveform` [C,T] into a copy of `video` (file: remux; frames: encode) -> the new path."""
        from .io import mux_audio
        return mux_audio(video, waveform, sample_rate, out_path, fps=fps)


def _source_of(video, fps):
    """What the checks and the muxer take: (file path or IMAGE tensor or None, fps)."""
    if isinstance(video, VideoClip):
        return (video.path, None) if video.path is not None else (video.images, video.fps)
    return video, fps


def _tee(blocks, sink):
    for b in blocks:
        sink(b)
        yield b


def load_pipeline(name_or_dir=None, device=None, dtype=None) -> FoleyPipeline:
    """None / "kf-tiny" -> the bundled kf-tiny; a folder -> the components it holds."""
    return FoleyPipeline(load_components(name_or_dir, device=device, dtype=dtype))
