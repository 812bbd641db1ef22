"""`python -m kf_core train vae`: the Mel-VAE on your audio, paper Alg. 2 (all four stages).

    python -m kf_core train vae --data audio:DIR --steps 20000 --out RUN [--preset full]
    torchrun --nproc_per_node N -m kf_core train vae ... --device cuda      (DDP)

Stages (last step of each, default a quarter of --steps each): 1 reconstruction, 2 + KL ramp,
3 + GAN ramp with R1, 4 decoder only. `--gan-upper 0` skips the adversarial terms. RUN gets
vae.safetensors (the weights `load_vae` reads) and latent_stats.safetensors (the per-channel
posterior mean/std over the training clips, the latent normalisation a DiT trains with).
Re-running with the same --out resumes from its newest checkpoint exactly.
"""
from __future__ import annotations

import dataclasses
import logging

import torch

from ..codec.mel import MelSpectrogram
from ..codec.mel_vae import MEL_VAE_PRESETS, MelVAE
from ..loading.state import save_state_dict
from .cli_audio import add_common_arguments, check_common, clips_from_args, codec_config, final_line, plain, \
    run_options, schedule, setup_logging
from .distributed import close, init_distributed
from .extract import MonoLogMel
from .gan import DiscConfig
from .runner import run
from .schedules import VAEStages
from .vae import RECON_LOSSES, VAETrainConfig, VAETrainer, init_mel_vae, latent_statistics

__all__ = ["add_arguments", "main", "vae_train_config"]

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    add_common_arguments(p, batch_size=16, segment_frames=64, lr=1e-3)
    p.add_argument("--preset", choices=sorted(MEL_VAE_PRESETS), default="tiny", help="Mel-VAE size")
    p.add_argument("--latent-channels", type=int, default=None, help="override the preset's latent channels C")
    p.add_argument("--stages", default=None, metavar="S1,S2,S3",
                   help="last step of stages 1, 2 and 3 (default: steps/4, steps/2, 3·steps/4)")
    p.add_argument("--kl-upper", type=float, default=1e-4, help="KL weight reached at the end of stage 2")
    p.add_argument("--kl-margin", type=float, default=0.0, help="Δ of max(0, KL − Δ)")
    p.add_argument("--gan-upper", type=float, default=0.1, help="GAN weight reached at the end of stage 3 (0: no GAN)")
    p.add_argument("--r1-weight", type=float, default=1.0)
    p.add_argument("--recon", choices=RECON_LOSSES, default="mse", help="reconstruction loss on log-mels")
    p.add_argument("--lr-disc", type=float, default=1e-4)
    p.add_argument("--disc-channels", type=int, default=32)


def _stages(args) -> VAEStages:
    if args.stages is None:
        s = args.steps
        bounds = (s // 4, s // 2, max(3 * s // 4, s // 2 + 1))
    else:
        try:
            bounds = tuple(int(x) for x in args.stages.split(","))
        except ValueError as e:
            raise ValueError(f"--stages {args.stages!r}: give three step numbers S1,S2,S3") from e
        if len(bounds) != 3:
            raise ValueError(f"--stages {args.stages!r}: give three step numbers S1,S2,S3")
    if not 0 <= bounds[0] < bounds[1] < bounds[2]:
        raise ValueError(f"--stages must increase (0 <= S1 < S2 < S3), got {bounds}; with --steps "
                         f"{args.steps} give explicit --stages")
    return VAEStages(*bounds, kl_upper=args.kl_upper, gan_upper=args.gan_upper)


def vae_train_config(args) -> VAETrainConfig:
    return VAETrainConfig(stages=_stages(args), kl_margin=args.kl_margin, r1_weight=args.r1_weight,
                          recon=args.recon, batch_size=args.batch_size, segment_frames=args.segment_frames,
                          lr_disc=args.lr_disc, disc=DiscConfig(channels=args.disc_channels), seed=args.seed,
                          **schedule(args))


def main(args) -> int:
    setup_logging()
    check_common(args)
    cfg = vae_train_config(args)  # validates before any data is read
    codec = codec_config(args)
    vae_cfg = MEL_VAE_PRESETS[args.preset]
    if args.latent_channels is not None:
        vae_cfg = dataclasses.replace(vae_cfg, latent_channels=args.latent_channels)
    vae_cfg = dataclasses.replace(vae_cfg, n_mels=codec.n_mels)
    opts = run_options(args, export_name="vae", export_kind="vae")
    ctx = init_distributed(args.device)
    try:
        clips = clips_from_args(args, codec)
        cpu_mel = MonoLogMel(MelSpectrogram(codec))
        mel_fn = MonoLogMel(MelSpectrogram(codec).to(ctx.device))
        vae = init_mel_vae(vae_cfg, clips, cpu_mel, seed=args.seed)
        trainer = VAETrainer(vae, cfg, clips, mel_fn, hop=codec.hop, ctx=ctx)
        config = {"command": "train vae", "preset": args.preset, "vae": plain(dataclasses.asdict(vae_cfg)),
                  "train": plain(cfg.to_dict()), "codec": args.codec, "data": args.data}
        rows = run(trainer, opts, config=config, export_config=config, ctx=ctx)
        if ctx.is_main:
            mean, std = latent_statistics(vae.eval(), clips, cpu_mel)
            save_state_dict({"mean": mean, "std": std}, args.out / "latent_stats.safetensors")
            print(final_line(rows, trainer, "rec", "reconstruction loss", args.out / "vae.safetensors"))
    finally:
        close(ctx)
    return 0
