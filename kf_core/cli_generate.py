"""`python -m kf_core generate`: video (+ prompt) in, stereo Foley out, muxed into the video.

Runs the same stages as the default ComfyUI workflow (open video → encode text and video →
flow sampling → Mel-VAE decode → Mono2Stereo → vocoder → mux) with a progress bar. Every input
and both outputs are checked before the model loads; the sound is streamed into the files, so
memory does not grow with the video's length.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .precision import PRECISIONS
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
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="dtype of the networks (auto: bf16 on a GPU, and on a CPU with native bf16 for models "
                        "of 50 M+ parameters; fp32 otherwise, and for the bundled kf-tiny; fp32 for exact parity)")
    p.add_argument("--threads", default=None,
                   help="CPU threads: N, or auto (default, or $KF_THREADS): every core, less those other "
                        "programs keep busy, so a shared CPU is never slower than one thread (kf_core.threads)")
    p.add_argument("--takes", type=int, default=1,
                   help="generate N takes and keep the one whose sound best follows the video's motion "
                        "(kf_core.takes); every take's score is printed")
    p.add_argument("--sync-model", type=Path, default=None,
                   help="with --takes: a full Synchformer checkpoint (MMAudio's synchformer_state_dict.pth) "
                        "so takes are ranked by DeSync too")
    p.add_argument("--no-watermark", action="store_true",
                   help="leave out the inaudible watermark (on by default; see `python -m kf_core watermark`)")
    p.add_argument("--watermark-key", default=None,
                   help="private key for the watermark (default: the pack's public key); detect with the same key")


def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .errors import UserError
    from .pipeline import Watermark, load_pipeline
    from .threads import CpuLoad, apply_threads, parse_threads
    from .validate import check_generation

    load = CpuLoad()  # others' CPU use is read over the checks and the model load: no extra wait
    try:
        threads = parse_threads(args.threads)
    except ValueError as e:
        raise UserError(f"--threads: {e}") from None
    if args.out is None and args.audio_out is None:
        raise UserError("give --out OUT.mp4 (needs --video) and/or --audio-out OUT.wav")
    if args.takes != 1 and (args.takes < 1 or args.video is None or args.duration is not None):
        raise UserError("--takes N (N >= 1) scores takes against the whole video: give --video, leave out --duration")
    if args.sync_model is not None and args.takes == 1:
        raise UserError("--sync-model ranks takes by DeSync: use it with --takes N (N > 1)")
    # every input and both outputs, before any model loads
    check_generation(video=args.video, out=args.out, audio_out=args.audio_out, duration=args.duration,
                     steps=args.steps, cfg=args.cfg, seed=args.seed, sampler=args.sampler, schedule=args.schedule,
                     shift=args.shift, window=args.window, overlap=args.overlap, prompt=args.prompt,
                     negative_prompt=args.negative_prompt)
    if args.watermark_key is not None and (args.no_watermark or not args.watermark_key.strip()):
        raise UserError("--watermark-key needs a non-empty key and the watermark on (drop --no-watermark)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    pipe = load_pipeline(args.model, device=args.device)
    dtype = pipe.components.apply_precision(args.precision)
    log.info("precision %s: networks in %s", args.precision, str(dtype).removeprefix("torch."))
    log.info("threads %s: %d", threads, apply_threads(threads, load))
    steps = args.steps if args.steps is not None else pipe.components.dit.sampling_defaults.steps
    with tqdm(total=steps, desc="sampling", unit="step") as bar:
        def progress(step, total, x, t):
            bar.total = total  # long clips sample several windows
            bar.update(1)
        knobs = dict(duration=args.duration, steps=args.steps, sampler=args.sampler, schedule=args.schedule,
                     shift=args.shift, cfg=args.cfg, seed=args.seed, stereo=not args.mono, window=args.window,
                     overlap=args.overlap, callback=progress)
        if args.takes == 1:
            paths = pipe.save(args.video, args.prompt, args.negative_prompt, out=args.out,
                              audio_out=args.audio_out, watermark=not args.no_watermark,
                              watermark_key=args.watermark_key, **knobs)
        else:  # the takes are whole waveforms already: write the best one
            from .io import write_audio
            wave, sr = _best_take(pipe, args, video=args.video, prompt=args.prompt,
                                  negative_prompt=args.negative_prompt, **knobs)
            if not args.no_watermark:  # ranked unmarked; the kept take is marked like any generation
                wave = Watermark(pipe.components.name, args.seed, args.watermark_key).embed(wave, sr)
            paths = {}
            if args.audio_out is not None:
                paths["audio"] = write_audio(args.audio_out, wave, sr)
            if args.out is not None:
                paths["video"] = pipe.mux(args.video, wave, sr, args.out)
    if "audio" in paths:
        from .io.audio import audio_info
        channels, seconds, rate = audio_info(paths["audio"])
        print(f"audio: {paths['audio']} ({channels} ch, {seconds:.3f} s at {rate} Hz)")
    if "video" in paths:
        print(f"video: {paths['video']}")
    return 0


def _best_take(pipe, args, *, video, duration, stereo, **knobs):
    """--takes N: generate N takes, print every take's score -> the best (stereo unless --mono)."""
    from .takes import generate_takes
    sync = None
    if args.sync_model is not None:
        from .encoders.sync_av import SyncNet
        sync = SyncNet.from_file(args.sync_model, device=args.device)
    takes = generate_takes(pipe, video, args.takes, stereo=stereo, sync_model=sync, **knobs)
    print(takes.report())
    return (takes.stereo if stereo else takes.waveforms[takes.best]), takes.sample_rate
