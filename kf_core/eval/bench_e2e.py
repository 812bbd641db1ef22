"""`python -m kf_core bench e2e`: one clip through every stage, per stage, at one or more precisions.

For a model folder (default: the bundled kf-tiny) and a video (default: a made 8 s 256x256 clip of a
bouncing square), each precision in `--precision` (default: fp32 and auto) runs the whole job:

  decode (both frame streams in one pass) -> video encoders (CLIP + Synchformer) -> text encoder
  -> sampling (steps x CFG) -> Mel-VAE decode -> Mono2Stereo -> vocoder -> watermark

and the table gives the seconds of each stage (median of `--repeats` after one untimed warm-up
run), the total and the real-time factor. The precisions run alternately, round by round, in one
process, so a busy machine slows them alike. Every precision after the first is compared with the
first's waveform (same seed): log-mel L1 distance (the codec's own front end) and SI-SDR, so a
faster dtype states what it costs. `auto` is what `generate` uses by default (`kf_core.precision`).
The clip is decoded in one pass (generation decodes clips over 8 s in pieces), so time it at 8 s.

`--threads 1 2 auto` runs every precision at each thread setting (auto: `kf_core.threads`, read
before each run), and `--hog N` keeps N other processes spinning on the CPU meanwhile: the
shared-machine case, where more threads can be much slower than one.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .benchutil import format_table

__all__ = ["add_arguments", "main", "STAGES"]

STAGES = ("decode", "video encoders", "text", "sampling", "vae", "stereo", "vocoder", "watermark")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..precision import PRECISIONS
    p.add_argument("--model", default=None, help="model folder (default: the bundled kf-tiny)")
    p.add_argument("--video", type=Path, default=None, help="input video (default: a made 8 s clip)")
    p.add_argument("--seconds", type=float, default=8.0, help="length of the made clip (default 8)")
    p.add_argument("--size", type=int, default=256, help="frame size of the made clip (default 256)")
    p.add_argument("--precision", nargs="+", default=["fp32", "auto"], choices=PRECISIONS,
                   help="precisions to run, the first is the reference (default: fp32 auto)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the network's)")
    p.add_argument("--cfg", type=float, default=None, help="guidance strength (default: the network's)")
    p.add_argument("--prompt", default="a ball bounces on a hard floor")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per precision (median reported)")
    p.add_argument("--threads", nargs="+", default=None,
                   help="CPU threads to run, each with every precision: N or auto (kf_core.threads), "
                        "e.g. 1 2 auto (default: torch's)")
    p.add_argument("--hog", type=int, default=0,
                   help="run beside N busy-looping processes (one core each), to measure a shared CPU")


def run_once(pipe, video: Path, *, prompt: str, steps: int | None, cfg: float | None, seed: int = 0
             ) -> tuple[dict[str, float], torch.Tensor]:
    """Every stage of one generation, timed -> ({stage: seconds}, stereo waveform [2, T])."""
    from ..io import sample_streams, streams_for
    from ..pipeline import (VideoCondition, Watermark, decode_mel, encode_text, open_video, sample_latents,
                            to_stereo, vocode)
    c = pipe.components
    enc = c.visual_encoders
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[stage] = now - clock
        clock = now

    clip = open_video(video)
    from ..config import SeqConfig
    streams = streams_for(SeqConfig(clip.duration), visual_size=enc.visual_input_size,
                          sync_size=enc.sync_input_size, sync_mode=enc.sync_resize, timing=enc.timing)
    frames = sample_streams(clip.path, streams, duration=clip.duration)
    lap("decode")
    visual, sync = enc.encode(frames["visual"], frames["sync"])
    vcond = VideoCondition(visual=visual, sync=sync, duration=clip.duration, source=(enc, clip))
    lap("video encoders")
    text = encode_text(c.text_encoder, prompt)
    lap("text")
    lat = sample_latents(c.dit, text=text, video=vcond, steps=steps, cfg=cfg, seed=seed)
    lap("sampling")
    mel = decode_mel(c.codec, lat)
    lap("vae")
    mel = to_stereo(c.codec, mel, vcond)
    lap("stereo")
    audio = vocode(c.codec, mel)
    lap("vocoder")
    wave = Watermark(c.name, seed).embed(audio.waveform, audio.sample_rate)
    lap("watermark")
    return times, wave[0]


def _made_clip(seconds: float, size: int) -> Path:
    from .bench_long import make_clip
    path = Path(tempfile.mkdtemp(prefix="kf-bench-e2e-")) / f"bounce_{seconds:g}s_{size}px.mp4"
    return make_clip(path, seconds, size, 25)


@contextlib.contextmanager
def _hogs(n: int):
    """n processes that each keep one core busy until the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0.0)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main(args) -> int:
    from ..pipeline import load_pipeline
    from ..threads import apply_threads, parse_threads
    from .metrics import mel_loss, si_sdr
    try:
        threads = [parse_threads(t) for t in args.threads] if args.threads else [None]
    except ValueError as e:
        raise SystemExit(f"error: --threads: {e}") from None
    video = args.video or _made_clip(args.seconds, args.size)
    pipes = [load_pipeline(args.model) for _ in args.precision]
    dtypes = [pipe.components.apply_precision(precision) for pipe, precision in zip(pipes, args.precision)]
    c0 = pipes[0].components
    configs = [(i, t) for t in threads for i in range(len(pipes))]
    labels = [args.precision[i] + ("" if t is None else f" {t}t" if t != "auto" else " auto-t") for i, t in configs]
    print(f"model {c0.name} (DiT {c0.dit_params() / 1e6:.1f} M parameters), video {video}, "
          f"torch default {torch.get_num_threads()} threads, {args.hog} hog process(es); precisions " +
          ", ".join(f"{p} = {str(d).removeprefix('torch.')}" for p, d in zip(args.precision, dtypes)), flush=True)
    kw = dict(prompt=args.prompt, steps=args.steps, cfg=args.cfg)
    runs: list[list[dict]] = [[] for _ in configs]
    used: list[list[int]] = [[] for _ in configs]
    waves: list[torch.Tensor] = [None] * len(configs)
    with _hogs(args.hog):
        for r in range(args.repeats + 1):  # round 0 warms up; rounds alternate the configurations
            for k, (i, t) in enumerate(configs):
                n = torch.get_num_threads() if t is None else apply_threads(t)
                times, waves[k] = run_once(pipes[i], video, **kw)
                if r:
                    runs[k].append(times)
                    used[k].append(n)
    duration = waves[0].shape[-1] / c0.codec.sample_rate
    medians = [{s: statistics.median(t[s] for t in rs) for s in STAGES} for rs in runs]
    headers = ["stage"] + [f"{label} s" for label in labels]
    rows = [[s] + [f"{m[s]:.3f}" for m in medians] for s in STAGES]
    totals = [sum(m.values()) for m in medians]
    rows.append(["total"] + [f"{t:.2f}" for t in totals])
    rows.append(["slowest run total"] + [f"{max(sum(t.values()) for t in rs):.2f}" for rs in runs])
    rows.append(["real-time factor"] + [f"{t / duration:.3f}" for t in totals])
    rows.append([f"speed-up vs {labels[0]}"] + [f"{totals[0] / t:.2f}x" for t in totals])
    rows.append(["threads used"] + ["/".join(str(n) for n in sorted(set(u))) for u in used])
    cfg = c0.codec.cfg
    for label, fn in (("log-mel L1 vs first", lambda a, b: float(mel_loss(a, b, cfg).mean())),
                      ("SI-SDR dB vs first", lambda a, b: float(si_sdr(a, b).mean()))):
        rows.append([label] + ["-"] + [f"{fn(waves[0], w):.3f}" for w in waves[1:]])
    print(f"{duration:.2f} s clip, median of {args.repeats} runs after a warm-up:")
    print(format_table(headers, rows))
    return 0
