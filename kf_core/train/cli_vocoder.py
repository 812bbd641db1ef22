"""`python -m kf_core train vocoder`: the Vocos-style vocoder (`kf_core.codec.vocos`) on your audio.

    python -m kf_core train vocoder --data audio:DIR --steps 20000 --out RUN [--preset base]
    python -m kf_core train vocoder ... --init RUN/vocoder.safetensors --vae VAE --vae-share 0.5
    torchrun --nproc_per_node N -m kf_core train vocoder ... --device cuda      (DDP)

Losses: mel L1 + multi-resolution STFT, plus a hinge GAN from --gan-start when --w-gan > 0
(the default on a GPU-less machine is no GAN: its discriminators cost ~20x the generator on a CPU).
With --vae, a share of the crops is vocoded from the Mel-VAE decoder's mels of the same audio
(paper §4.5.2 stage 4), so the vocoder learns to undo the decoder's errors. RUN gets
vocoder.safetensors (what `load_vocoder` and a model folder's manifest role "vocoder" read).
Re-running with the same --out resumes from its newest checkpoint exactly.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from ..codec.load import load_vae, load_vocoder
from ..codec.mel import MelSpectrogram
from ..codec.vocos import VOCOS_PRESETS, Vocos, vocos_config_for
from .cli_audio import add_common_arguments, check_common, clips_from_args, codec_config, final_line, plain, \
    run_options, schedule, setup_logging
from .distributed import close, init_distributed
from .extract import MonoLogMel
from .gan import DiscConfig
from .runner import run
from .vocoder import VocoderTrainConfig, VocoderTrainer, decoder_mels

__all__ = ["add_arguments", "main", "vocoder_train_config"]

log = logging.getLogger(__name__)

EXPORT_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def add_arguments(p) -> None:
    add_common_arguments(p, batch_size=16, segment_frames=32, lr=1e-3)
    p.add_argument("--preset", choices=sorted(VOCOS_PRESETS), default="tiny", help="vocoder size")
    p.add_argument("--init", type=Path, default=None, help="start from these vocoder weights (fine-tuning)")
    p.add_argument("--vae", type=Path, default=None,
                   help="Mel-VAE file: learn from its decoder's mels (paper §4.5.2 stage 4)")
    p.add_argument("--vae-share", type=float, default=0.5,
                   help="with --vae: share of crops vocoded from decoder mels (the rest from true mels)")
    p.add_argument("--w-mel", type=float, default=45.0)
    p.add_argument("--w-stft", type=float, default=1.0)
    p.add_argument("--w-gan", type=float, default=0.0, help="adversarial weight (0: no discriminator)")
    p.add_argument("--gan-start", type=int, default=0, help="first step with the adversarial loss")
    p.add_argument("--disc-channels", type=int, default=16)
    p.add_argument("--export-dtype", choices=sorted(EXPORT_DTYPES), default="float32",
                   help="storage of the exported weights (float16 halves the file)")


def vocoder_train_config(args) -> VocoderTrainConfig:
    if not 0.0 <= args.vae_share <= 1.0:
        raise ValueError(f"--vae-share must be in [0, 1], got {args.vae_share}")
    return VocoderTrainConfig(batch_size=args.batch_size, segment_frames=args.segment_frames, w_mel=args.w_mel,
                              w_stft=args.w_stft, w_gan=args.w_gan, gan_start=args.gan_start,
                              disc=DiscConfig(channels=args.disc_channels, layers=3, scales=(1,)), seed=args.seed,
                              **schedule(args))


def _generator(args, codec) -> Vocos:
    if args.init is None:
        torch.manual_seed(args.seed)  # identical initial weights on every rank
        return Vocos(vocos_config_for(codec, VOCOS_PRESETS[args.preset]))
    gen = load_vocoder(args.init)
    if not isinstance(gen, Vocos):
        raise ValueError(f"--init {args.init}: this trainer fine-tunes Vocos vocoders, the file holds "
                         f"{type(gen).__name__}")
    if (gen.cfg.n_mels, gen.cfg.hop, gen.cfg.sample_rate) != (codec.n_mels, codec.hop, codec.sample_rate):
        raise ValueError(f"--init {args.init} vocodes {gen.cfg.n_mels} mels, hop {gen.cfg.hop} at "
                         f"{gen.cfg.sample_rate} Hz, but --codec {args.codec} has {codec.n_mels}, {codec.hop}, "
                         f"{codec.sample_rate}")
    return gen.train()


def main(args) -> int:
    setup_logging()
    check_common(args)
    cfg = vocoder_train_config(args)  # validates before any data is read
    codec = codec_config(args)
    opts = run_options(args, export_name="vocoder", export_kind="vocoder")
    ctx = init_distributed(args.device)
    try:
        gen = _generator(args, codec)
        mel_source = None
        if args.vae is not None:
            vae = load_vae(args.vae, device=ctx.device)
            if vae.n_mels != codec.n_mels:
                raise ValueError(f"--vae {args.vae} has {vae.n_mels} mel bins, --codec {args.codec} {codec.n_mels}")
            mel_source = decoder_mels(vae, share=args.vae_share)
        clips = clips_from_args(args, codec)
        mel_fn = MonoLogMel(MelSpectrogram(codec).to(ctx.device))
        trainer = VocoderTrainer(gen, cfg, clips, mel_fn, hop=codec.hop, mel_source=mel_source, ctx=ctx,
                                 export_dtype=EXPORT_DTYPES[args.export_dtype])
        config = {"command": "train vocoder", "preset": args.preset, "vocoder": plain(dataclasses.asdict(gen.cfg)),
                  "train": plain(cfg.to_dict()), "codec": args.codec, "data": args.data,
                  "init": str(args.init) if args.init else None, "vae": str(args.vae) if args.vae else None,
                  "vae_share": args.vae_share if args.vae else None}
        rows = run(trainer, opts, config=config, export_config=config, ctx=ctx)
        if ctx.is_main:
            print(final_line(rows, trainer, "mel", "mel loss", args.out / "vocoder.safetensors"))
    finally:
        close(ctx)
    return 0
