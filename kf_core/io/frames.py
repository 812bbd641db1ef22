"""Frames by time: sample a video file or an IMAGE batch at target rates (8 fps visual, 25 fps sync).

Which frame a target time takes is the stream's **timing policy** (`StreamSpec.timing`), the
same for files and for frame tensors. Times are seconds from the first frame; the stream's target
clock starts at `start`:

- "on_screen" (Kling-Foley): output frame k is **the frame shown at t_k = start + k/fps**, i.e.
  the last frame whose presentation time is <= t_k + 0.1 ms (sample-and-hold: a 16 fps source
  gives each frame to 25 fps targets once or twice; the 0.1 ms tolerance absorbs float rounding
  where a frame and a target coincide). A target before the first frame takes the first frame.
- "mmaudio" (MMAudio's `load_video`, which its networks were used with): the target clock starts
  at `start` and adds 1/fps in float64 per output frame (so t_k accumulates rounding error, as
  MMAudio's does), and target k takes **the first frame whose time is >= t_k**, compared exactly.
  Where a frame and a target coincide, the accumulated error usually makes the target a hair
  later, so MMAudio takes the next frame (25 fps video, 25 fps sync stream: 175 of 192 frames are
  one frame later than the one on screen). Targets after the last frame, inside its display
  time, take the last frame (MMAudio drops them and shortens the clip instead).

`StreamSpec.skip` drops the clock's first ticks: a long clip encoded in pieces continues one clock
and gets exactly the frames of a single pass.

How many frames: `count` if given, else int(duration · fps) — `SeqConfig.visual_len` for the visual
stream; for the sync stream pass `count=SeqConfig.sync_frames` (see `streams_for`). `duration`
defaults to the rest of the video after `start`. Targets past the end of what actually decodes
(a truncated file, or a count larger than the video) are not invented: the returned tensor is
shorter and a warning is logged; callers compare its length with what they asked for.

Decoding streams: each decoded frame is converted to RGB and resized only when a target needs it,
then dropped, so memory is bounded by the outputs (T·3·S·S bytes), not by the video. Frames whose
shorter side exceeds 4·S are first area-shrunk by swscale to a shorter side of 2·S (speed: 1080p
→ 224); `frames_from_images` resizes in one step, so for such large frames the two paths pick
the same frames but pixels may differ by a few levels. Below that size they are bit-identical.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from ..config import SeqConfig
from .errors import MediaError, check_dimensions
from .resize import MODES, _resize, resize_frames, rotate
from .video import decode_frames, open_video, probe

__all__ = ["StreamSpec", "streams_for", "sample_streams", "sample_frames", "frames_from_images",
           "target_times", "TIME_EPSILON", "TIMINGS"]

log = logging.getLogger(__name__)

TIME_EPSILON = 1e-4  # seconds; far below any frame interval (0.1 ms = 10 000 fps)
PRESHRINK = 2  # decoded frames larger than 4x the output are first area-shrunk to 2x the output
TIMINGS = ("on_screen", "mmaudio")  # frame-timing policies (module doc)


@dataclass(frozen=True)
class StreamSpec:
    """One target stream: `fps`, output `size` (square), resize `mode`, optional frame `count`,
    `min_count` frames the caller cannot do without (16 for one sync segment), the frame-`timing`
    policy ("on_screen" | "mmaudio", module doc) and `skip` clock ticks dropped before the first
    output frame."""

    fps: float
    size: int
    mode: str = "squash"
    count: int | None = None
    min_count: int = 1
    timing: str = "on_screen"
    skip: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and 0 < float(self.fps) <= 1000):
            raise ValueError(f"StreamSpec.fps must be in (0, 1000], got {self.fps!r}")
        check_dimensions(self.size, self.size, f"the requested output size ({self.size})")
        if self.mode not in MODES:
            raise ValueError(f"StreamSpec.mode must be one of {MODES}, got {self.mode!r}")
        if self.count is not None and self.count < 0:
            raise ValueError(f"StreamSpec.count must be >= 0, got {self.count}")
        if self.timing not in TIMINGS:
            raise ValueError(f"StreamSpec.timing must be one of {TIMINGS}, got {self.timing!r}")
        if isinstance(self.skip, bool) or not isinstance(self.skip, int) or self.skip < 0:
            raise ValueError(f"StreamSpec.skip must be a whole number of frames >= 0, got {self.skip!r}")

    @classmethod
    def of(cls, spec: "StreamSpec | tuple") -> "StreamSpec":
        return spec if isinstance(spec, StreamSpec) else cls(*spec)


def streams_for(seq: SeqConfig, *, visual_size: int = 224, sync_size: int = 224,
                sync_mode: str = "crop", timing: str = "on_screen") -> dict[str, StreamSpec]:
    """SeqConfig in, the {"visual", "sync"} StreamSpecs whose counts are its visual_len / sync_frames
    (`sync_mode`: how the sync encoder wants frames fitted, its config's `resize`; `timing`: the
    frame-timing policy, module doc)."""
    return {
        "visual": StreamSpec(seq.visual_fps, visual_size, "squash", count=seq.visual_len, timing=timing),
        "sync": StreamSpec(seq.sync_fps, sync_size, sync_mode, count=seq.sync_frames,
                           min_count=seq.sync_segment, timing=timing),
    }


def target_times(spec: StreamSpec, count: int, start: float = 0.0) -> np.ndarray:
    """Stream spec, output count, clock start (s) -> float64 [count] target times of output frames
    (ticks spec.skip .. spec.skip + count - 1 of the stream's clock; module doc)."""
    n = spec.skip + count
    if spec.timing == "mmaudio":  # MMAudio's clock: next = start; next += 1 / fps per frame taken
        out = np.empty(n, dtype=np.float64)
        t, step = float(start), 1 / float(spec.fps)
        for k in range(n):
            out[k] = t
            t += step
    else:
        out = start + np.arange(n, dtype=np.float64) / float(spec.fps)
    return out[spec.skip:]


def _target_count(spec: StreamSpec, duration: float) -> int:
    return spec.count if spec.count is not None else max(0, int(duration * spec.fps) - spec.skip)


def _check_long_enough(name: str, spec: StreamSpec, duration: float, path) -> None:
    need = spec.min_count / spec.fps
    if duration + TIME_EPSILON < need:
        raise MediaError(path, f"the video is {duration:.2f} s long, shorter than the {spec.min_count} "
                         f"frames at {spec.fps:g} fps = {need:.2f} s the {name} stream needs",
                         f"give a clip of at least {need:.2f} s")


class _Collector:
    """One stream's output [T,3,S,S], its targets given to source frames in time order
    (sample-and-hold): `assign_until` books target slots for a frame, `place` fills them."""

    def __init__(self, spec: StreamSpec, count: int, start: float) -> None:
        self.spec, self.count = spec, count
        self.targets = target_times(spec, count, start)
        self.out = torch.empty(count, 3, spec.size, spec.size, dtype=torch.uint8)
        self.filled = 0                                  # targets booked so far
        self._booked: dict[int, tuple[int, int]] = {}    # frame key -> its target slots [a, b)

    def next_target(self) -> float | None:
        return float(self.targets[self.filled]) if self.filled < self.count else None

    def assign_until(self, limit: float, key: int, *, inclusive: bool = False) -> None:
        """Book frame `key` for every pending target < limit (<= when inclusive)."""
        first = self.filled
        while self.filled < self.count:
            t = self.targets[self.filled]
            if not (t < limit or (inclusive and t <= limit)):
                break
            self.filled += 1
        if self.filled > first:
            a, _ = self._booked.get(key, (first, first))
            self._booked[key] = (a, self.filled)

    def booked(self, key: int) -> tuple[int, int] | None:
        return self._booked.pop(key, None)

    def place(self, slots: tuple[int, int], rgb: torch.Tensor) -> None:
        """Fill target slots [a, b) with the frame `rgb` [1,3,H,W], resized to this stream once.
        The copies go through numpy: torch would split these small copies over its threads,
        which on a busy CPU made them 20x slower."""
        frame = _resize(rgb, self.spec.size, self.spec.mode)[0].numpy()            # 3 S S (a view)
        a, b = slots
        self.out.numpy()[a:b] = frame

    def result(self) -> torch.Tensor:
        return self.out if self.filled == self.count else self.out[:self.filled].clone()


def _frame_to_rgb(frame, rotation: int, short_side: int | None, reformatter: VideoReformatter) -> torch.Tensor:
    """Decoded frame in, uint8 [1,3,H,W] display-oriented RGB out; when the frame's shorter side
    exceeds 2·short_side, swscale first shrinks it (area filter) so that side is `short_side`.
    One `reformatter` serves many frames: PyAV's per-frame one sets swscale up anew for every
    frame, which halved the decoding pass's speed at 1080p."""
    w, h = frame.width, frame.height
    if short_side is not None and min(w, h) > 2 * short_side:
        scale = short_side / min(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    rgb = reformatter.reformat(frame, w, h, "rgb24", interpolation="AREA" if (w, h) != (frame.width, frame.height)
                               else None)
    x = torch.from_numpy(rgb.to_ndarray()).unsqueeze(0).permute(0, 3, 1, 2)  # 1 3 H W, channels-last memory
    return rotate(x, rotation)


def sample_streams(path: str | os.PathLike, streams: Mapping[str, StreamSpec | tuple], *,
                   duration: float | None = None, start: float = 0.0,
                   check_cancel: Callable[[], None] | None = None) -> dict[str, torch.Tensor]:
    """Video path + {name: StreamSpec or (fps, size, mode[, count[, min_count]])} in,
    {name: uint8 [T,3,S,S]} out — every stream filled in ONE decoding pass (module doc: the rule)."""
    info = probe(path)
    if start < 0:
        raise ValueError(f"start must be >= 0 seconds, got {start}")
    if start >= info.duration:
        raise MediaError(info.path, f"start {start:.2f} s is at or past the end of the "
                         f"{info.duration:.2f} s video", "choose an earlier start")
    avail = info.duration - start
    if duration is None:
        duration = avail
    elif duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    elif duration > avail + TIME_EPSILON:
        log.warning("%s: asked for %.3f s from %.3f s but the video has %.3f s; sampling what exists",
                    info.path, duration, start, info.duration)
        duration = avail
    specs = {name: StreamSpec.of(s) for name, s in streams.items()}
    for name, spec in specs.items():
        _check_long_enough(name, spec, duration, info.path)
    collectors = {name: _Collector(spec, _target_count(spec, duration), start)
                  for name, spec in specs.items()}
    firsts = [float(c.targets[0]) for c in collectors.values() if c.count]
    _run_collectors(info, collectors, min(firsts) if firsts else start, check_cancel)
    out = {}
    for name, c in collectors.items():
        if c.filled < c.count:
            log.warning("%s: stream %r got %d of %d frames; the video ends (or breaks off) earlier",
                        info.path, name, c.filled, c.count)
        out[name] = c.result()
    return out


def _run_collectors(info, collectors: dict[str, _Collector], start: float,
                    check_cancel: Callable[[], None] | None) -> None:
    """Decode from the key frame before `start` (the earliest target) and feed every collector by
    its timing policy: "on_screen" gives the frame held on screen to the targets before the next
    frame; "mmaudio" gives each frame to the pending targets at or before its own time.

    Two stages overlap: this thread decodes and books target slots; `_WORKERS` threads convert
    each booked frame to RGB (swscale, one set-up per worker for the pass), resize it per stream
    and fill its slots, a frame behind (a frame's bookings are final once the next frame is
    decoded; every frame has slots of its own, so the workers never write the same place). At
    most `_AHEAD` frames wait, so memory stays bounded; FFmpeg and torch release the GIL for the
    heavy work."""
    held = None  # (time, key, frame): the frame on screen until the next one arrives
    step = 1.0 / info.fps if info.fps > 0 else 0.04
    # 1080p -> 224: let swscale do the first, cheap area shrink to 2x the largest output size,
    # the bicubic antialiased resize does the rest (5x faster than bicubic from full size)
    shrink = PRESHRINK * max(c.spec.size for c in collectors.values())
    on_screen = [c for c in collectors.values() if c.spec.timing == "on_screen"]
    first_after = [c for c in collectors.values() if c.spec.timing == "mmaudio"]
    local = threading.local()         # one swscale set-up per worker thread for the whole pass
    waiting: deque = deque()
    frames: dict[int, object] = {}    # key -> decoded frame, until its bookings are handed over

    def convert(frame, jobs) -> None:
        if not hasattr(local, "reformatter"):
            local.reformatter = VideoReformatter()
        rgb = _frame_to_rgb(frame, info.rotation, shrink, local.reformatter)
        for c, slots in jobs:
            c.place(slots, rgb)

    def hand_over(pool, key: int) -> None:
        """Frame `key`'s bookings are final: queue its conversion, if any stream wants it."""
        frame = frames.pop(key, None)
        jobs = [(c, slots) for c in collectors.values() if (slots := c.booked(key)) is not None]
        if jobs:
            while len(waiting) >= _AHEAD:
                waiting.popleft().result()
            waiting.append(pool.submit(convert, frame, jobs))

    def pending():
        return [c for c in collectors.values() if c.next_target() is not None]

    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="kf-frames") as pool:
        try:
            with open_video(info.path) as (container, stream):
                for key, (t, frame) in enumerate(decode_frames(
                        container, stream, origin=info.start_time, start=start,
                        check_cancel=check_cancel, path=info.path)):
                    frames[key] = frame
                    for c in first_after:
                        c.assign_until(t, key, inclusive=True)
                    if held is None and t > start + TIME_EPSILON:
                        held = (t, key, frame)  # targets before the first frame take the first frame
                    if held is not None:
                        for c in on_screen:
                            c.assign_until(t - TIME_EPSILON, held[1])
                        if held[1] != key:
                            hand_over(pool, held[1])
                    held = (t, key, frame)
                    if not pending():
                        break
                else:
                    if held is not None:  # the last frame stays on screen for its duration
                        t, key, frame = held
                        dur = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else step
                        for c in collectors.values():
                            c.assign_until(t + dur - TIME_EPSILON, key)
                for key in sorted(frames):
                    hand_over(pool, key)
            while waiting:
                waiting.popleft().result()
        except BaseException:
            for f in waiting:
                f.cancel()
            raise


# Two RGB workers: at 1080p each frame's swscale + resize (~2.3 ms) outweighs its decoding (~0.6 ms),
# so one worker held the pass to ~370 source frames/s on 2 cores, two reach ~430 (bench io)
_WORKERS = 2
_AHEAD = 4  # frames queued for the RGB workers at most (1080p: ~3 MB each, decoded)


def sample_frames(path: str | os.PathLike, fps: float, *, size: int, mode: str = "squash",
                  count: int | None = None, duration: float | None = None, start: float = 0.0,
                  min_count: int = 1, dtype: torch.dtype = torch.uint8, timing: str = "on_screen",
                  check_cancel: Callable[[], None] | None = None) -> torch.Tensor:
    """Video path in, [T,3,size,size] frames for the targets start + k/fps out (uint8 0..255; a
    float dtype gives 0..1). T = count, else int(duration·fps). The module doc gives the rules."""
    spec = StreamSpec(fps, size, mode, count, min_count, timing)
    x = sample_streams(path, {"frames": spec}, duration=duration, start=start,
                       check_cancel=check_cancel)["frames"]
    return x if dtype == torch.uint8 else x.to(dtype) / 255.0


def _as_uint8(images: torch.Tensor) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images
    # same quantisation a decoder's rgb24 output has, so files and IMAGE batches agree
    return (images.float() * 255.0).clamp_(0, 255).round_().to(torch.uint8)


def frames_from_images(images: torch.Tensor, fps: float | None, target_fps: float, *, size: int,
                       mode: str = "squash", count: int | None = None, duration: float | None = None,
                       start: float = 0.0, timestamps=None, min_count: int = 1, timing: str = "on_screen",
                       skip: int = 0) -> torch.Tensor:
    """IMAGE batch [N,H,W,3] (float 0..1 or uint8) + its fps in, uint8 [T,3,size,size] frames for
    the targets start + k/target_fps out — the same rules (and the same frames) as `sample_frames`
    on a file.

    Frame i is shown from i/fps (or from `timestamps[i]` seconds for variable frame rate, which
    must increase) until the next frame; the batch lasts N/fps (VFR: last timestamp + the last
    interval, or + 1/fps when fps is given)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise MediaError(None, f"expected an IMAGE batch [N,H,W,3], got shape {tuple(images.shape)}",
                         "pass the frames of one video (batch, height, width, RGB)")
    n, h, w, _ = images.shape
    if n == 0:
        raise MediaError(None, "the IMAGE batch holds no frames", "connect a video with frames")
    check_dimensions(w, h, "the IMAGE frames")
    if timestamps is None:
        if fps is None or not fps > 0:
            raise MediaError(None, f"frame rate must be positive, got {fps!r}",
                             "give the fps the frames were made at (e.g. 16 for Wan, 24 or 25 for LTX)")
        times = np.arange(n, dtype=np.float64) / float(fps)
        end = n / float(fps)
    else:
        times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if times.shape[0] != n or (n > 1 and not np.all(np.diff(times) > 0)):
            raise MediaError(None, f"timestamps must be {n} increasing values (one per frame), got "
                             f"{times.shape[0]}", "pass one presentation time in seconds per frame")
        times = times - times[0]
        last = 1.0 / float(fps) if fps else (times[-1] - times[-2] if n > 1 else 1.0 / 25)
        end = times[-1] + last
    avail = end - start
    if avail <= 0:
        raise MediaError(None, f"start {start:.2f} s is past the end of the {end:.2f} s frames",
                         "choose an earlier start")
    duration = avail if duration is None else min(duration, avail)
    spec = StreamSpec(target_fps, size, mode, count, min_count, timing, skip)
    _check_long_enough("requested", spec, duration, None)
    want = _target_count(spec, duration)
    targets = target_times(spec, want, start)
    targets = targets[targets < end - TIME_EPSILON]  # nothing is invented past the end
    if len(targets) < want:
        log.warning("IMAGE batch: got %d of %d frames at %g fps; the frames end at %.3f s",
                    len(targets), want, target_fps, end)
    if timing == "mmaudio":  # the first frame at or after the target (the last one past it)
        idx = np.searchsorted(times, targets, side="left")
    else:  # the frame on screen: the last one at or before the target
        idx = np.searchsorted(times, targets + TIME_EPSILON, side="right") - 1
    idx = np.clip(idx, 0, n - 1)
    uniq, inverse = np.unique(idx, return_inverse=True)
    out = torch.empty(len(uniq), 3, size, size, dtype=torch.uint8)
    for j, i in enumerate(uniq.tolist()):  # one source frame at a time bounds memory
        frame = _as_uint8(images[i]).permute(2, 0, 1).unsqueeze(0)  # 1 3 H W
        out[j] = resize_frames(frame, size, mode)[0]
    return out[torch.from_numpy(inverse.reshape(-1))]  # T 3 size size
