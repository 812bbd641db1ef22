"""`python -m kf_core fuzz --cases 2000`: mutated real files against the two parsers that face user files.

Targets:
- `video`: probing and decoding (`io.probe`, `io.sample_frames`) of small real clips (H.264/AAC
  .mp4, H.264 .mkv, VP9 .webm, MPEG-4 .mov) after mutation;
- `weights`: reading weight files (`loading.read_state_dict`, `encoders.read_keys`) and loading
  them (`codec.load_vae`, `load_vocoder`, `load_mono2stereo`) from kf-tiny's safetensors and
  torch.save checkpoints (zip and legacy pickle) after mutation.
Mutations (1–3 per case, drawn from the case's seed): truncate, flip bits, overwrite a range with
random bytes (half the time inside the first 4 KB, where the headers are), zero a range, delete or
duplicate a range, and splice in bytes from another file of the same kind (a foreign header).

Each case must end in the right output (a VideoInfo with sane numbers and frames of the asked
shape; a dict of tensors; a loaded module) or in one of our errors (`kf_core.errors.UserError`:
MediaError, CheckpointError, ...). Anything else is a finding: a raw exception, a hang (the case
runs in a worker process killed after `--timeout` seconds) or a crash. Findings are saved under
`--out` with their seed so `--replay SEED` reruns one. `tests/test_fuzz.py` runs a bounded
property-based version (hypothesis) of the same targets in the test suite.
"""
from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch

from ..codec.bigvgan import BIGVGAN_PRESETS, BigVGAN
from ..codec.load import load_vae, load_vocoder
from ..codec.mono2stereo import load_mono2stereo
from ..components import BUNDLED_DIR
from ..encoders.load import detect_kind, read_keys
from ..errors import UserError
from ..io import probe, sample_frames
from ..io.errors import MAX_PIXELS_PER_SIDE
from ..loading.state import read_state_dict

__all__ = ["MUTATIONS", "mutate", "base_files", "check_video", "check_weights", "run_case", "TARGETS"]

HEADER = 4096


# ---------------------------------------------------------------- mutations (bytes in, bytes out)
def _span(rng: np.random.Generator, n: int, longest: int = 64, header: bool = True) -> tuple[int, int]:
    end = min(n, HEADER) if header and rng.random() < 0.5 else n
    start = int(rng.integers(0, max(end, 1)))
    return start, min(n, start + int(rng.integers(1, longest + 1)))


def _truncate(data: bytes, rng, other: bytes) -> bytes:
    return data[:int(rng.integers(0, len(data)))]


def _flip(data: bytes, rng, other: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 17))):
        i = int(rng.integers(0, min(len(b), HEADER))) if rng.random() < 0.5 else int(rng.integers(0, len(b)))
        b[i] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def _overwrite(data: bytes, rng, other: bytes) -> bytes:
    a, z = _span(rng, len(data))
    return data[:a] + rng.integers(0, 256, z - a, dtype=np.uint8).tobytes() + data[z:]


def _zero(data: bytes, rng, other: bytes) -> bytes:
    a, z = _span(rng, len(data), longest=4096)
    return data[:a] + bytes(z - a) + data[z:]


def _delete(data: bytes, rng, other: bytes) -> bytes:
    a, z = _span(rng, len(data), longest=512)
    return data[:a] + data[z:]


def _duplicate(data: bytes, rng, other: bytes) -> bytes:
    a, z = _span(rng, len(data), longest=512)
    return data[:z] + data[a:z] + data[z:]


def _splice(data: bytes, rng, other: bytes) -> bytes:
    """Bytes of another file (its header, half the time) written over part of this one."""
    n = int(rng.integers(1, min(len(other), HEADER) + 1))
    j = 0 if rng.random() < 0.5 else int(rng.integers(0, max(1, len(other) - n)))
    i = 0 if rng.random() < 0.5 else int(rng.integers(0, len(data)))
    return data[:i] + other[j:j + n] + data[i + n:]


MUTATIONS: dict[str, Callable[[bytes, np.random.Generator, bytes], bytes]] = {
    "truncate": _truncate, "flip": _flip, "overwrite": _overwrite, "zero": _zero, "delete": _delete,
    "duplicate": _duplicate, "splice": _splice,
}


def mutate(data: bytes, other: bytes, rng: np.random.Generator) -> tuple[bytes, list[str]]:
    """A file's bytes (and another file's, for splicing) -> mutated bytes and the mutations' names."""
    names = [str(rng.choice(list(MUTATIONS))) for _ in range(int(rng.integers(1, 4)))]
    for name in names:
        if data:
            data = MUTATIONS[name](data, rng, other)
    return data, names


# ---------------------------------------------------------------- the real files that get mutated
def _write_clip(path: Path, codec: str, *, audio: bool) -> Path:
    fmt = {".mkv": "matroska", ".webm": "webm"}.get(path.suffix)
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream(codec, rate=12)
        vs.width, vs.height, vs.pix_fmt = 32, 24, "yuv420p"
        a = out.add_stream("aac", rate=22050, layout="mono") if audio else None
        for k in range(12):
            img = np.full((24, 32, 3), 20 * k % 256, np.uint8)
            img[k % 24, :] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = k
            out.mux(vs.encode(frame))
            if a is not None:
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 22050, k * 1024
                out.mux(a.encode(af))
        out.mux(vs.encode(None))
        if a is not None:
            out.mux(a.encode(None))
    return path


def base_files(target: str, folder: Path) -> list[Path]:
    """The real files a target's cases mutate, written into `folder` (made once, reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / f".{target}.ready"
    if target == "video":
        files = [folder / n for n in ("a.mp4", "b.mkv", "c.webm", "d.mov")]
        if not done.exists():
            _write_clip(files[0], "libx264", audio=True)
            _write_clip(files[1], "libx264", audio=False)
            _write_clip(files[2], "libvpx-vp9", audio=False)
            _write_clip(files[3], "mpeg4", audio=True)
    elif target == "weights":
        files = [folder / n for n in ("m2s.safetensors", "vae.safetensors", "m2s.pth", "m2s_legacy.pt",
                                      "vocoder.pt")]
        if not done.exists():
            shutil.copy(BUNDLED_DIR / "mono2stereo.safetensors", files[0])
            shutil.copy(BUNDLED_DIR / "vae.safetensors", files[1])
            sd = read_state_dict(files[0])
            torch.save(sd, files[2])
            torch.save(sd, files[3], _use_new_zipfile_serialization=False)
            gen = BigVGAN(BIGVGAN_PRESETS["tiny"])
            torch.save({"generator": gen.state_dict()}, files[4])
    else:
        raise ValueError(f"unknown fuzz target {target!r}; choose one of {sorted(TARGETS)}")
    done.touch()
    return files


# ---------------------------------------------------------------- what a case must end in
def check_video(path: Path) -> str:
    """Probe and decode a (possibly damaged) video: 'ok' with sane numbers, or a UserError."""
    info = probe(path)
    assert math.isfinite(info.duration) and info.duration > 0, f"duration {info.duration}"
    assert math.isfinite(info.fps) and info.fps >= 0, f"fps {info.fps}"
    assert 0 < info.width <= MAX_PIXELS_PER_SIDE and 0 < info.height <= MAX_PIXELS_PER_SIDE
    assert info.rotation in (0, 90, 180, 270)
    want = min(16, int(min(info.duration, 2.0) * 8))
    if want >= 1:
        frames = sample_frames(path, 8, size=16, count=want, duration=min(info.duration, 2.0))
        assert frames.dtype == torch.uint8 and frames.shape[1:] == (3, 16, 16) and frames.shape[0] <= want
    return "ok"


def check_weights(path: Path) -> str:
    """Read and load a (possibly damaged) weight file: 'ok' with tensors / a module, or a UserError."""
    sd = read_state_dict(path)
    assert sd and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items())
    keys = read_keys(path)
    assert all(isinstance(k, str) for k in keys)
    detect_kind(keys)
    loader = (load_vae if path.stem.startswith("vae") else load_vocoder if path.stem.startswith("vocoder")
              else load_mono2stereo)
    module = loader(path)
    assert isinstance(module, torch.nn.Module)
    return "ok"


TARGETS: dict[str, Callable[[Path], str]] = {"video": check_video, "weights": check_weights}


def run_case(target: str, seed: int, folder: Path, *, raise_raw: bool = False) -> tuple[str, str]:
    """One case from its seed -> (outcome, what was done). Outcomes: 'ok', 'clear error', or 'raw ...'."""
    rng = np.random.default_rng(seed)
    files = base_files(target, folder / "base")
    src, other = files[int(rng.integers(0, len(files)))], files[int(rng.integers(0, len(files)))]
    data, names = mutate(src.read_bytes(), other.read_bytes(), rng)
    # the case keeps the base file's stem (the loaders pick by it) and is kept only if it is a finding
    case = folder / "cases" / f"{target}{seed}" / src.name
    case.parent.mkdir(parents=True, exist_ok=True)
    case.write_bytes(data)
    what = f"{src.name} {'+'.join(names)} ({len(data)} bytes)"
    try:
        outcome = TARGETS[target](case), what
    except UserError as e:
        outcome = "clear error", f"{what}: {type(e).__name__}: {e}"
    except Exception as e:  # a finding: any other exception is a bug
        if raise_raw:
            raise
        return f"raw {type(e).__name__}", f"{what}: {''.join(traceback.format_exception_only(type(e), e)).strip()}"
    shutil.rmtree(case.parent)
    return outcome


# ---------------------------------------------------------------- the long run, in a worker process
def _worker(conn, folder: str, targets: list[str]) -> None:
    import logging
    logging.disable(logging.WARNING)  # damaged files warn a lot; the outcome is what counts
    torch.set_num_threads(1)
    for target in targets:  # imports, base files and a first (unmutated) run of each before any timed case
        for path in base_files(target, Path(folder) / "base"):
            TARGETS[target](path)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(run_case(job[0], job[1], Path(folder)))


class _Worker:
    def __init__(self, folder: Path, targets: list[str]) -> None:
        ctx = mp.get_context("spawn")  # no fork after torch's thread pools exist
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, str(folder), targets), daemon=True)
        self.proc.start()
        if self.conn.recv() != "ready":  # start-up (imports, warm-up) is not part of any case's time
            raise RuntimeError("the fuzz worker did not start")

    def run(self, target: str, seed: int, timeout: float):
        self.conn.send((target, seed))
        if not self.conn.poll(timeout):
            return None
        try:
            return self.conn.recv()
        except EOFError:
            return "crash", f"the worker died (exit {self.proc.exitcode})"

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cases", type=int, default=2000, help="cases per target (default 2000)")
    p.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    p.add_argument("--seed", type=int, default=0, help="first case seed")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a case may take before it counts as a hang (default 60: a shared CPU is slow)")
    p.add_argument("--out", type=Path, default=None, help="folder for the base files and any findings")
    p.add_argument("--replay", type=int, default=None, help="rerun the case with this seed in this process")


def main(args) -> int:
    folder = args.out or Path(tempfile.mkdtemp(prefix="kf-fuzz-"))
    targets = list(TARGETS) if args.target == "all" else [args.target]
    if args.replay is not None:
        for target in targets:
            print(target, *run_case(target, args.replay, folder, raise_raw=True))
        return 0
    findings = 0
    worker = _Worker(folder, targets)
    try:
        for target in targets:
            counts: Counter = Counter()
            start = time.perf_counter()
            for seed in range(args.seed, args.seed + args.cases):
                res = worker.run(target, seed, args.timeout)
                if res is None:  # a hang: kill it, keep going with a fresh worker
                    worker.stop()
                    worker = _Worker(folder, targets)
                    res = ("hang", f"no answer after {args.timeout:g} s")
                elif res[0] == "crash":
                    worker.stop()
                    worker = _Worker(folder, targets)
                outcome, what = res
                counts[outcome] += 1
                if outcome not in ("ok", "clear error"):
                    findings += 1
                    print(f"FINDING {target} seed {seed}: {outcome}: {what} (file in {folder / 'cases'})",
                          flush=True)
            total = sum(counts.values())
            print(f"{target}: {total} cases in {time.perf_counter() - start:.0f} s: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), flush=True)
    finally:
        worker.stop()
    print(f"findings: {findings} (files in {folder})")
    return 1 if findings else 0
