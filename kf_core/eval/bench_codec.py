"""`python -m kf_core bench codec`: real-time factors of encode, decode and vocode for stereo audio.

For each size (kf-tiny, paper) the codec is built with RANDOM weights: speed depends on the
architecture and the tensor sizes, not on the weight values, so no checkpoint is needed.
- encode: left and right waves [2,T] -> log-mel -> Mel-VAE posterior (what training and eval do),
- decode: normalised latents [1,La,C] -> Mel-VAE decode -> Mono2Stereo -> stereo mel [1,2,M,F],
- vocode: stereo mel -> waves [1,2,T], with the Vocos iSTFT vocoder (kf-tiny's), BigVGAN (the
  size's) and Griffin-Lim.
RTF = processing seconds / audio seconds (lower is faster; < 1 is faster than real time).
Peak memory is the device's (CUDA allocator peak, or the process's peak RSS on CPU).
"""
from __future__ import annotations

import argparse
import logging

import torch

from kf_core.config import CODEC_PRESETS
from kf_core.eval.benchutil import (add_device_arguments, describe_peak_memory, format_table, reset_peak_memory,
                                    resolve_device, time_call)

log = logging.getLogger(__name__)

SIZES = {  # size -> (Mel-VAE preset, BigVGAN preset, Mono2Stereo hidden, Vocos preset)
    "tiny": ("tiny", "tiny", 32, "tiny"),
    "paper": ("full", "44k", 128, "base"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_device_arguments(p)
    p.add_argument("--seconds", type=float, default=10.0, help="audio length (default 10 s, stereo)")
    p.add_argument("--sizes", default="tiny,paper", help="comma list of: " + ", ".join(SIZES))
    p.add_argument("--repeats", type=int, default=3, help="timed runs per stage (median reported)")
    p.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations")
    p.add_argument("--no-bigvgan", action="store_true", help="skip the neural vocoder (slow on CPU at paper size)")


def _build(size: str, device: torch.device, dtype: torch.dtype, gl_iters: int):
    from dataclasses import replace

    from kf_core.codec.bigvgan import BIGVGAN_PRESETS, BigVGAN
    from kf_core.codec.bundle import AudioCodec
    from kf_core.codec.griffinlim import GriffinLim
    from kf_core.codec.mel_vae import MEL_VAE_PRESETS, MelVAE
    from kf_core.codec.mono2stereo import Mono2Stereo
    from kf_core.codec.vocos import VOCOS_PRESETS, Vocos, vocos_config_for
    vae_key, voc_key, m2s_hidden, vocos_key = SIZES[size]
    vcfg = MEL_VAE_PRESETS[vae_key]
    cfg = replace(CODEC_PRESETS["44k"], latent_channels=vcfg.latent_channels)
    torch.manual_seed(0)
    codec = AudioCodec(cfg, MelVAE(vcfg), vocoder=BigVGAN(BIGVGAN_PRESETS[voc_key]),
                       mono2stereo=Mono2Stereo(cfg.n_mels, visual_dim=None, hidden=m2s_hidden))
    codec = codec.to(device=device, dtype=dtype).eval()
    gl = GriffinLim(cfg, n_iter=gl_iters).to(device)
    vocos = Vocos(vocos_config_for(cfg, VOCOS_PRESETS[vocos_key])).to(device=device, dtype=dtype).eval()
    return codec, gl, vocos


def _modules_path(codec, mel: torch.Tensor) -> torch.Tensor:
    """BigVGAN with its anti-aliased activations as up -> act -> down modules (what training runs), for
    the side-by-side row against generation's one-pass polyphase form."""
    from kf_core.codec.alias_free import Activation1d
    Activation1d.polyphase = False
    try:
        return codec.vocode(mel)
    finally:
        Activation1d.polyphase = True


def _params(m: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in m.parameters()) / 1e6:.2f} M"


def main(args) -> int:
    device, dtype = resolve_device(args.device, args.dtype)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        print(f"bench codec: unknown size(s) {unknown}; choose from {list(SIZES)}")
        return 2
    print(f"bench codec on {device} ({dtype}), {args.seconds:g} s stereo at 44.1 kHz; RANDOM weights "
          "(speed does not depend on weight values)")
    rows = []
    for size in sizes:
        codec, gl, vocos = _build(size, device, dtype, args.gl_iters)
        cfg = codec.cfg
        samples = int(args.seconds * cfg.sample_rate) // cfg.samples_per_latent * cfg.samples_per_latent
        secs = samples / cfg.sample_rate
        g = torch.Generator().manual_seed(0)
        wave = (0.1 * torch.randn(2, samples, generator=g)).to(device=device, dtype=dtype)
        z = torch.randn(1, samples // cfg.samples_per_latent, cfg.latent_channels, generator=g).to(device)
        with torch.inference_mode():
            stereo_mel = codec.to_stereo(codec.latents_to_mel(z))                          # 1 2 M F
            stages = [("encode", "Mel-VAE " + _params(codec.vae), lambda: codec.encode_audio(wave)),
                      ("decode", f"VAE decoder {_params(codec.vae.decoder)} + Mono2Stereo {_params(codec.mono2stereo)}",
                       lambda: codec.to_stereo(codec.latents_to_mel(z)))]
            stages.append(("vocode", "Vocos " + _params(vocos),
                           lambda: vocos(stereo_mel[0].to(dtype))))
            if not args.no_bigvgan:
                stages.append(("vocode", "BigVGAN " + _params(codec.vocoder), lambda: codec.vocode(stereo_mel)))
                stages.append(("vocode", "BigVGAN, activations as 3 modules", lambda: _modules_path(codec, stereo_mel)))
            stages.append(("vocode", f"Griffin-Lim x{args.gl_iters}", lambda: gl(stereo_mel[0].float())))
            for stage, what, fn in stages:
                reset_peak_memory(device)
                stats = time_call(fn, device, repeats=args.repeats, warmup=1)
                rows.append([size, stage, what, stats.median, stats.median / secs, describe_peak_memory(device)])
                log.info("%s %s %s: %.3f s", size, stage, what, stats.median)
        del codec, gl, vocos
    print(format_table(["size", "stage", "module", "seconds", "RTF", "peak memory"], rows))
    return 0
