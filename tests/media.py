"""Test media made with PyAV: videos whose frame k shows the number k, audio, truncated copies.

Frame k is painted as `bits` horizontal bands, band b white when bit b of k is set (band 0 at the
top), on a mid-grey border-free canvas. Bands span the full width, so the code survives "squash"
and centre "crop" resizes of landscape frames and H.264 at crf 12; `read_index` reads it back from
any [3,H,W]/[H,W,3] uint8 frame (or a batch). A red marker in the top-left corner shows rotation.

    from tests.media import make_video, read_index
    path = make_video(tmp_path / "v.mp4", fps=Fraction(30000, 1001), seconds=2.0)
"""
from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

__all__ = ["index_frame", "read_index", "make_video", "make_audio_wave", "truncated_copy",
           "decode_all_rgb", "marker_corner"]

BITS = 8  # frames 0..255


def index_frame(k: int, width: int, height: int, bits: int = BITS, marker: bool = True) -> np.ndarray:
    """Frame number k in, uint8 [H,W,3] picture of its bits out (band b white = bit b set)."""
    img = np.zeros((height, width, 3), np.uint8)
    edges = np.linspace(0, height, bits + 1).round().astype(int)
    for b in range(bits):
        if (k >> b) & 1:
            img[edges[b]:edges[b + 1]] = 255
    if marker:  # a red square in the top-left corner (bits only use grey levels)
        m = max(2, min(width, height) // 6)
        img[:m, :m] = (255, 0, 0)
    return img


def read_index(frames, bits: int = BITS) -> int | list[int]:
    """uint8 frame [3,H,W] / [H,W,3] (or a batch [T,3,H,W]) in, the frame number(s) it shows out."""
    x = torch.as_tensor(frames)
    if x.ndim == 4:
        return [read_index(f, bits) for f in x]
    if x.shape[0] == 3 and x.shape[-1] != 3:
        x = x.permute(1, 2, 0)
    h, w = x.shape[:2]
    grey = x.float().mean(-1)  # H W
    edges = np.linspace(0, h, bits + 1)
    k = 0
    for b in range(bits):
        lo, hi = edges[b], edges[b + 1]
        r0, r1 = int(lo + 0.3 * (hi - lo)), max(int(lo + 0.7 * (hi - lo)), int(lo + 0.3 * (hi - lo)) + 1)
        band = grey[r0:r1, w // 3: 2 * w // 3 + 1]  # centre: away from the marker and crop edges
        if band.mean() > 127:
            k |= 1 << b
    return k


def marker_corner(frame) -> str:
    """uint8 [3,H,W] in, which corner ("tl", "tr", "bl", "br") holds the red marker out."""
    x = torch.as_tensor(frame).float()
    red = x[0] - (x[1] + x[2]) / 2  # H W
    h, w = red.shape
    q = {"tl": red[: h // 4, : w // 4], "tr": red[: h // 4, -(w // 4):],
         "bl": red[-(h // 4):, : w // 4], "br": red[-(h // 4):, -(w // 4):]}
    return max(q, key=lambda c: float(q[c].mean()))


def make_audio_wave(seconds: float, sample_rate: int = 44100, channels: int = 2,
                    freq: float = 440.0) -> np.ndarray:
    """A sine of `seconds` in, float32 [C,T] (channel c at freq·(c+1)) out."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    return np.stack([0.3 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def make_video(path, *, fps=25, seconds: float = 2.0, width: int = 64, height: int = 48,
               timestamps=None, audio: bool = False, audio_seconds: float | None = None,
               sample_rate: int = 44100, rotation: int = 0, faststart: bool = False,
               codec: str = "libx264", bits: int = BITS) -> Path:
    """Write a test video and return its path.

    Constant rate: round(seconds·fps) frames at `fps` (int, float or Fraction, e.g. 30000/1001).
    Variable rate: `timestamps` = presentation times in seconds (frame k shows k; stored at a
    1/1000 s time base); the last frame lasts until `seconds`. `rotation` sets the display matrix (counter-clockwise degrees).
    `audio` adds a stereo AAC (.mp4/.mov) or FLAC (.mkv) sine of `audio_seconds` (default: as long
    as the video). Odd sizes are encoded as yuv444p (yuv420p needs even sizes).
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if timestamps is None:
        n = int(round(seconds * rate))
        pts = list(range(n))
        time_base = 1 / rate
        durations = None
    else:
        time_base = Fraction(1, 1000)
        pts = [int(round(t * 1000)) for t in timestamps]
        n = len(pts)
        if seconds <= timestamps[-1]:
            raise ValueError("seconds (the video's end) must come after the last timestamp")
        ends = pts[1:] + [int(round(seconds * 1000))]
        # VFR: each frame lasts until the next, the last until `seconds` (the muxer would guess)
        durations = {p: e - p for p, e in zip(pts, ends)}
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        vs = out.add_stream(codec, rate=rate if timestamps is None else None)
        vs.width, vs.height = width, height
        vs.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        vs.codec_context.time_base = time_base
        vs.time_base = time_base
        if codec == "libx264":
            vs.codec_context.options = {"crf": "12", "preset": "ultrafast"}
        if rotation:
            vs.set_display_rotation(rotation)
        astream = None
        if audio:
            acodec = "flac" if path.suffix.lower() == ".mkv" else "aac"
            astream = out.add_stream(acodec, rate=sample_rate, layout="stereo")
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(index_frame(k, width, height, bits), format="rgb24")
            frame.pts = pts[k]
            frame.time_base = time_base
            out.mux(_with_durations(vs.encode(frame), durations))
        out.mux(_with_durations(vs.encode(None), durations))
        if astream is not None:
            dur = audio_seconds if audio_seconds is not None else float(n / rate if timestamps is None
                                                                         else seconds)
            wave = make_audio_wave(dur, sample_rate)
            fmt = astream.codec_context.format.name
            chunk = astream.codec_context.frame_size or 4096
            for s in range(0, wave.shape[1], chunk):
                part = wave[:, s:s + chunk]
                if fmt.endswith("p"):
                    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format="fltp", layout="stereo")
                else:
                    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(part.T.reshape(1, -1)),
                                                    format="flt", layout="stereo")
                af.sample_rate, af.pts = sample_rate, s
                out.mux(astream.encode(af))
            out.mux(astream.encode(None))
    return path


def _with_durations(packets, durations):
    if durations is not None:
        for p in packets:
            if p.pts is not None and p.pts in durations:
                p.duration = durations[p.pts]
    return packets


def truncated_copy(src, dst, fraction: float = 0.5) -> Path:
    """Copy the first `fraction` of a file's bytes (a broken download) and return the copy's path."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def decode_all_rgb(path) -> tuple[torch.Tensor, list[float]]:
    """Every frame of a video as a float IMAGE batch [N,H,W,3] in 0..1, plus their pts in seconds."""
    frames, times = [], []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            frames.append(torch.from_numpy(f.to_ndarray(format="rgb24")))
            times.append(float(f.pts * f.time_base))
    return torch.stack(frames).float() / 255.0, times


def copy_media(src, dst) -> Path:
    shutil.copyfile(src, dst)
    return Path(dst)
