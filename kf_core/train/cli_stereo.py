"""`python -m kf_core train stereo`: Mono2Stereo (`kf_core.codec.mono2stereo`) on your stereo audio.

    python -m kf_core train stereo --data audio:DIR --steps 20000 --out RUN
    torchrun --nproc_per_node N -m kf_core train stereo ... --device cuda      (DDP)

The input is the mono mix of each stereo crop (formed in the linear mel domain, mono = (L + R) / 2,
the contract Mono2Stereo keeps by construction), the target its left and right log-mels; the loss
is L1 weighted by the mono mel's magnitude (`train.stereo.StereoTrainer`). Audio-only data has no
picture, so the model trained here is unconditioned (it learns the pan a sound usually has);
kf-tiny's picture-following Mono2Stereo is trained by `train-tiny` on clips with sync tokens.
Mono files are skipped (a warning counts them). RUN gets mono2stereo.safetensors (what a model
folder's manifest role "mono2stereo" reads). Re-running with the same --out resumes exactly.
"""
from __future__ import annotations

import logging

import torch

from ..codec.mel import MelSpectrogram
from ..codec.mono2stereo import Mono2Stereo
from .audio_sources import AudioClips
from .cli_audio import add_common_arguments, check_common, clips_from_args, codec_config, final_line, plain, \
    run_options, schedule, setup_logging
from .distributed import close, init_distributed
from .runner import run
from .stereo import StereoTrainConfig, StereoTrainer

__all__ = ["add_arguments", "main", "stereo_clips"]

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    add_common_arguments(p, batch_size=16, segment_frames=64, lr=1e-3)
    p.add_argument("--hidden", type=int, default=128, help="channels of the pan network")
    p.add_argument("--layers", type=int, default=4, help="residual dilated conv blocks")
    p.add_argument("--kernel-size", type=int, default=5, help="conv kernel over mel frames (odd)")


def stereo_clips(clips: AudioClips) -> AudioClips:
    """The stereo clips of a training set (mono ones dropped, counted in a warning)."""
    keep = [i for i, w in enumerate(clips.waves) if w.shape[0] == 2]
    if not keep:
        raise ValueError(f"train stereo needs stereo audio: all {len(clips)} clip(s) are mono; give stereo files "
                         "(or synthetic:N, whose clips are stereo)")
    if len(keep) < len(clips):
        log.warning("train stereo: %d of %d clip(s) are mono and are skipped", len(clips) - len(keep), len(clips))
    return AudioClips([clips.waves[i] for i in keep], [clips.sources[i] for i in keep])


def main(args) -> int:
    setup_logging()
    check_common(args)
    if args.hidden <= 0 or args.layers < 0 or args.kernel_size < 1 or args.kernel_size % 2 == 0:
        raise ValueError(f"need --hidden > 0, --layers >= 0 and an odd --kernel-size, got {args.hidden}, "
                         f"{args.layers}, {args.kernel_size}")
    sched = schedule(args)
    cfg = StereoTrainConfig(batch_size=args.batch_size, segment_frames=args.segment_frames, lr=sched["lr"],
                            lr_min=sched["lr_min"], warmup_steps=sched["warmup_steps"],
                            decay_steps=sched["decay_steps"], seed=args.seed)
    codec = codec_config(args)
    opts = run_options(args, export_name="mono2stereo", export_kind="mono2stereo")
    ctx = init_distributed(args.device)
    try:
        torch.manual_seed(args.seed)  # the same initial weights in every run and on every rank
        model = Mono2Stereo(codec.n_mels, None, args.hidden, args.layers, args.kernel_size, codec.log)
        clips = stereo_clips(clips_from_args(args, codec))
        trainer = StereoTrainer(model, cfg, clips, MelSpectrogram(codec).to(ctx.device), log=codec.log,
                                hop=codec.hop, ctx=ctx)
        config = {"command": "train stereo", "mono2stereo": {"n_mels": codec.n_mels, "hidden": args.hidden,
                                                              "layers": args.layers, "kernel_size": args.kernel_size,
                                                              "log": codec.log},
                  "train": plain(cfg.to_dict()), "codec": args.codec, "data": args.data}
        rows = run(trainer, opts, config=config, export_config=config, ctx=ctx)
        if ctx.is_main:
            print(final_line(rows, trainer, "loss", "loss", args.out / "mono2stereo.safetensors"))
    finally:
        close(ctx)
    return 0
