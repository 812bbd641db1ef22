"""Every input and output of a generation, checked before any model loads or any work starts.

`check_generation(...)` is the one step the command line (before `load_pipeline`) and
`FoleyPipeline.generate` (before encoding) run; the ComfyUI nodes call the single checks
(`check_fps`, `output_in_folder`). Each raises `UserError` (or `MediaError`, one of them) with a
message that names the value given and what to do. Nothing here loads a model or writes a file
(the writable-folder check creates and removes one empty probe file).

    info = check_generation(video="in.mp4", out="out.mp4", audio_out="out.wav", seed=7, steps=20)
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import SeqConfig
from .errors import UserError

__all__ = ["MAX_SEED", "check_seed", "check_steps", "check_number", "check_fps", "check_duration",
           "check_window", "check_outputs", "check_generation", "output_in_folder", "Checked"]

MAX_SEED = 2 ** 64 - 1  # torch generators take 64-bit seeds (ComfyUI's seed widget has the same range)
MAX_STEPS = 10_000


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def check_seed(seed) -> int:
    """A seed in, the same int out if 0 <= seed <= 2^64 − 1; UserError otherwise."""
    if not _is_int(seed):
        raise UserError(f"seed must be a whole number, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise UserError(f"seed must be between 0 and 2^64 − 1 = {MAX_SEED}, got {seed}; "
                        "pick a smaller number (any seed in that range gives its own sound)")
    return int(seed)


def check_steps(steps) -> int:
    if not _is_int(steps) or not 1 <= int(steps) <= MAX_STEPS:
        raise UserError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r} "
                        "(the paper uses 20 Euler steps)")
    return int(steps)


def check_number(value, what: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """A finite number within [low, high] (or (low, high] with low_open) -> float; UserError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise UserError(f"{what} must be a finite number, got {value!r}")
    v = float(value)
    if low is not None and (v <= low if low_open else v < low):
        raise UserError(f"{what} must be {'greater than' if low_open else 'at least'} {low:g}, got {v:g}")
    if high is not None and v > high:
        raise UserError(f"{what} must be at most {high:g}, got {v:g}")
    return v


def check_fps(fps, what: str = "fps") -> float | None:
    """A frame rate as typed: None or 0 -> None (take it from elsewhere), a positive finite number ->
    float; negative, NaN or infinite -> UserError saying what was given."""
    if fps is None or (isinstance(fps, numbers.Real) and not isinstance(fps, bool) and fps == 0):
        return None
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not math.isfinite(float(fps)) \
            or not 0 < float(fps) <= 1000:
        raise UserError(f"{what} must be 0 (take the frame rate from the video, video_info or a VIDEO) or a "
                        f"frame rate between 0 and 1000, got {fps!r}; e.g. Wan 16, LTX 24/25, HunyuanVideo 24")
    return float(fps)


def check_duration(duration, *, video_duration: float | None = None) -> float | None:
    """Seconds asked for (None = the video's, or the default) -> float or None; UserError when it is
    not finite, shorter than one sync segment, or longer than the video."""
    shortest = SeqConfig(1.0).min_duration
    if video_duration is not None and video_duration + 1e-9 < shortest:
        raise UserError(f"the video is {video_duration:.3f} s long; at least {shortest:.2f} s "
                        "(one 16-frame sync segment at 25 fps) is needed — give a longer clip")
    if duration is None:
        return None
    d = check_number(duration, "duration (seconds)", low=0, low_open=True)
    if d < shortest:
        raise UserError(f"duration {d:g} s is shorter than one sync segment ({shortest:.2f} s); "
                        f"give at least {shortest:.2f} s")
    if video_duration is not None and d > video_duration + 1e-3:
        raise UserError(f"duration {d:g} s is longer than the video ({video_duration:.3f} s); leave it out to "
                        "use the whole video, or give a shorter one (it cuts the video, it cannot extend it)")
    return d


def check_window(window, overlap) -> None:
    shortest = SeqConfig(1.0).min_duration
    if window is not None:
        w = check_number(window, "window (seconds)", low=shortest)
        ov = check_number(overlap, "overlap (seconds)", low=0)
        if ov >= w:
            raise UserError(f"overlap ({ov:g} s) must be shorter than the window ({w:g} s)")
    else:
        check_number(overlap, "overlap (seconds)", low=0)


def check_outputs(out=None, audio_out=None, video=None) -> None:
    """Both outputs checked together, before anything is written: extensions, folders, the
    source's fit into the container; `out` needs a `video` to mux into."""
    from .io.audio import check_audio_path
    from .io.mux import check_video_output
    from .io.paths import check_writable_folder
    if out is not None:
        if video is None:
            raise UserError("--out muxes the sound into a video: give --video IN.mp4, or use --audio-out OUT.wav "
                            "for text-to-audio")
        check_video_output(out, video)
    if audio_out is not None:
        p = check_audio_path(audio_out)
        folder = p.parent if str(p.parent) else Path(".")
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise UserError(f"{p}: {folder} is a file, not a folder — choose another output path")
        check_writable_folder(folder, p)


@dataclass(frozen=True)
class Checked:
    """What `check_generation` found: the probed video (or None) and the checked seed."""

    video_info: object | None
    seed: int


def check_generation(*, video=None, fps=None, out=None, audio_out=None, duration=None, steps=None,
                     cfg=None, seed=0, sampler="euler", schedule="uniform", shift=None, window=None,
                     overlap=1.0, batch_size=1, prompt="", negative_prompt="") -> Checked:
    """Every argument of a generation -> Checked; the first problem raises UserError / MediaError."""
    from .io import probe
    from .sampling import SAMPLERS, SCHEDULES
    seed = check_seed(seed)
    if steps is not None:  # None: the network's default
        check_steps(steps)
    if cfg is not None:
        check_number(cfg, "cfg (guidance scale)", low=0, high=100)
    if shift is not None:
        check_number(shift, "shift", low=0, low_open=True, high=1000)
    if sampler not in SAMPLERS:
        raise UserError(f"unknown sampler {sampler!r}; choose one of {', '.join(sorted(SAMPLERS))}")
    if schedule not in SCHEDULES:
        raise UserError(f"unknown schedule {schedule!r}; choose one of {', '.join(sorted(SCHEDULES))}")
    if not _is_int(batch_size) or not 1 <= batch_size <= 64:
        raise UserError(f"batch_size must be a whole number from 1 to 64, got {batch_size!r}")
    for name, text in (("prompt", prompt), ("negative prompt", negative_prompt)):
        if not isinstance(text, str):
            raise UserError(f"the {name} must be text, got {type(text).__name__}")
    check_window(window, overlap)
    info = None
    video_duration = None
    if isinstance(video, torch.Tensor):
        n = int(video.shape[0]) if video.ndim == 4 else 0
        if video.ndim != 4 or video.shape[-1] != 3 or n == 0:
            raise UserError(f"video frames must be an IMAGE batch [N,H,W,3] with N >= 1, got {tuple(video.shape)}")
        rate = check_fps(fps)
        if rate is None:
            raise UserError("frames need their frame rate and none was given: set fps (Wan 16, LTX 24/25, "
                            "HunyuanVideo 24) or connect video_info — it is never assumed")
        video_duration = n / rate
    elif isinstance(video, (str, os.PathLike)):
        info = probe(video)
        video_duration = info.duration
    elif video is not None and not hasattr(video, "duration"):
        raise UserError(f"video must be a file path or an IMAGE batch, got {type(video).__name__}")
    elif video is not None:
        video_duration = float(video.duration)  # an opened VideoClip
    check_duration(duration, video_duration=video_duration)
    check_outputs(out, audio_out, None if video is None or hasattr(video, "duration") else video)
    return Checked(video_info=info, seed=seed)


def output_in_folder(root: str | os.PathLike, prefix: str, suffix: str) -> Path:
    """An output folder, a filename prefix ("foley" or "sub/foley") and a suffix -> the file path
    inside the folder (not created); UserError for an empty prefix, a folder-only prefix, a hidden
    name ("." / ".." / ".name") or a path that leads outside the folder."""
    if not isinstance(prefix, str) or not prefix.strip():
        raise UserError(f"filename_prefix is empty ({prefix!r}); give a name such as 'kling_foley/foley'")
    name = prefix.replace("\\", "/").rsplit("/", 1)[-1]
    if not name:
        raise UserError(f"filename_prefix {prefix!r} names a folder but no file; add a name, e.g. "
                        f"'{prefix.rstrip('/')}/foley'")
    if name.startswith("."):  # also "." and "..": the file would be named ".mp4" / "...mp4"
        raise UserError(f"filename_prefix {prefix!r} would make a hidden file; give a name that does not "
                        "start with a dot, e.g. 'kling_foley/foley'")
    base = Path(root).resolve()
    target = (base / f"{prefix}{suffix}").resolve()
    if base not in target.parents:
        raise UserError(f"filename_prefix {prefix!r} points outside the output folder; use a plain name "
                        "or a sub-folder such as 'foley/take'")
    return target
