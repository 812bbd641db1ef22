"""`python -m kf_core generate`: video (+ prompt) in, stereo Foley out, muxed into the video.

Runs the same stages as the default ComfyUI workflow (open video → encode text and video →
flow sampling → Mel-VAE decode → Mono2Stereo → vocoder → mux) with a progress bar.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .sampling import SAMPLERS, SCHEDULES
    p.add_argument("--video", type=Path, help="input video file (omit for text-to-audio)")
    p.add_argument("--prompt", default="", help="what the sound should be (optional with a video)")
    p.add_argument("--negative-prompt", default="", help="what to steer away from")
    p.add_argument("--out", type=Path, help="output video with the new stereo track (.mp4/.mkv/.mov)")
    p.add_argument("--audio-out", type=Path, help="also (or only) write the audio (.wav/.flac)")
    p.add_argument("--model", default=None,
                   help="model folder or name (default: the bundled kf-tiny)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of audio (default: the video's duration; 8 s for text-to-audio)")
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default: the model's, MMAudio 25, Kling-Foley 20)")
    p.add_argument("--sampler", default="euler", choices=sorted(SAMPLERS))
    p.add_argument("--schedule", default="uniform", choices=sorted(SCHEDULES))
    p.add_argument("--shift", type=float, default=None, help="time shift for the sd3 schedule")
    p.add_argument("--cfg", type=float, default=None,
                   help="classifier-free guidance scale (default: the model's, 4.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=float, default=None,
                   help="generate clips longer than this many seconds in overlapping windows "
                        "(default: the longest clip the model takes in one pass)")
    p.add_argument("--overlap", type=float, default=1.0, help="seconds shared by neighbouring windows")
    p.add_argument("--mono", action="store_true", help="skip Mono2Stereo")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best available)")
    p.add_argument("--no-watermark", action="store_true",
                   help="leave out the inaudible watermark (on by default; see `python -m kf_core watermark`)")
    p.add_argument("--watermark-key", default=None,
                   help="private key for the watermark (default: the pack's public key); detect with the same key")


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .io import write_audio
    from .pipeline import load_pipeline

    if args.out is None and args.audio_out is None:
        raise SystemExit("give --out OUT.mp4 (needs --video) and/or --audio-out OUT.wav")
    if args.out is not None and args.video is None:
        raise SystemExit("--out muxes audio into a video: give --video IN.mp4, or use --audio-out for "
                         "text-to-audio")
    if args.watermark_key is not None and (args.no_watermark or not args.watermark_key.strip()):
        raise SystemExit("--watermark-key needs a non-empty key and the watermark on (drop --no-watermark)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pipe = load_pipeline(args.model, device=args.device)
    steps = args.steps if args.steps is not None else pipe.components.dit.sampling_defaults.steps
    with tqdm(total=steps, desc="sampling", unit="step") as bar:
        def progress(step, total, x, t):
            bar.total = total  # long clips sample several windows
            bar.update(1)
        wave, sr = pipe.generate(video=args.video, prompt=args.prompt,
                                 negative_prompt=args.negative_prompt, duration=args.duration,
                                 steps=args.steps, sampler=args.sampler, schedule=args.schedule,
                                 shift=args.shift, cfg=args.cfg, seed=args.seed,
                                 stereo=not args.mono, window=args.window, overlap=args.overlap,
                                 callback=progress, watermark=not args.no_watermark,
                                 watermark_key=args.watermark_key)
    if args.audio_out is not None:
        path = write_audio(args.audio_out, wave, sr)
        print(f"audio: {path} ({wave.shape[0]} ch, {wave.shape[1] / sr:.3f} s at {sr} Hz)")
    if args.out is not None:
        path = pipe.mux(args.video, wave, sr, args.out)
        print(f"video: {path}")
    return 0
