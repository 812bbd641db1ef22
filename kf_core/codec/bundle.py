"""The audio codec as one inference bundle: waveform <-> normalised latents, mono or stereo.

    codec = AudioCodec(cfg, vae, latent_mean, latent_std, vocoder=None, mono2stereo=None)
    wave = codec.decode_latents(z, visual=None, stereo=True, num_samples=n)   # z [B,La,C] normalised
    mean, std = codec.encode_audio(wave)                                      # [B,La,C] normalised

decode: un-normalise (z·std + mean) -> Mel-VAE decode -> Mono2Stereo (or L = R = mono without one)
-> vocoder on each channel -> trim/pad to `num_samples`. The VAE is anything with
`encode(mel [B,M,F]) -> posterior with .mean/.std [B,C,La]` and `decode(z [B,C,La]) -> mel [B,M,2La]`
(MelVAE, MMAudioVAE); the vocoder anything mapping mel [N,M,F] -> wave [N,1,F·hop] (Vocos, BigVGAN,
GriffinLim, the default). Latent normalisation belongs to the codec (DESIGN §3).

Shape legend: B batch, T samples, Ch audio channels, M mel bins, F mel frames, La latent frames,
C latent channels, Lv visual frames, Dv visual width.
"""
from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as Fn
from torch import nn

from ..config import CODEC_PRESETS, CodecConfig
from .griffinlim import GriffinLim
from .mel import MelSpectrogram

__all__ = ["AudioCodec", "load_audio_codec", "codec_from_roles", "fit_samples"]

log = logging.getLogger(__name__)


def fit_samples(wave: torch.Tensor, samples: int) -> torch.Tensor:
    """Waveform [..., T] -> [..., samples]: trimmed, or zero-padded at the end."""
    if wave.shape[-1] >= samples:
        return wave[..., :samples]
    return Fn.pad(wave, (0, samples - wave.shape[-1]))


class AudioCodec(nn.Module):
    """Front end + Mel-VAE + optional Mono2Stereo + vocoder, with the latent statistics."""

    def __init__(self, cfg: CodecConfig, vae: nn.Module, latent_mean: torch.Tensor | None = None,
                 latent_std: torch.Tensor | None = None, *, vocoder: nn.Module | None = None,
                 mono2stereo: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.mel = MelSpectrogram(cfg)
        self.vae = vae
        self.vocoder = GriffinLim(cfg) if vocoder is None else vocoder
        self.mono2stereo = mono2stereo
        c = cfg.latent_channels
        mean = torch.zeros(c) if latent_mean is None else latent_mean.detach().float().flatten()
        std = torch.ones(c) if latent_std is None else latent_std.detach().float().flatten()
        if mean.numel() != c or std.numel() != c:
            raise ValueError(f"latent statistics must have {c} values (the codec's latent channels), got "
                             f"mean {mean.numel()} and std {std.numel()}")
        if (std <= 0).any():
            raise ValueError("latent_std must be positive in every channel")
        self.register_buffer("latent_mean", mean)                              # C
        self.register_buffer("latent_std", std)                                # C

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    def _vae_param(self) -> torch.Tensor:
        return next(self.vae.parameters())

    # ------------------------------------------------------------ encode
    def encode_audio(self, wave: torch.Tensor, *, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """wave [B,T] -> posterior (mean, std) [B,La,C], in the normalised latent space unless normalize=False.

        T is cut to a whole number of latent tokens (samples_per_latent); a shorter wave is refused.
        """
        if wave.dim() != 2:
            raise ValueError(f"encode_audio expects mono waves [B, T], got {tuple(wave.shape)}; "
                             "mix or flatten channels into the batch first")
        step = self.cfg.samples_per_latent
        usable = wave.shape[-1] // step * step
        if usable < 2 * step:
            raise ValueError(f"{wave.shape[-1]} samples is too short to encode; give at least {2 * step} "
                             f"({2 * step / self.cfg.sample_rate:.3f} s at {self.cfg.sample_rate} Hz)")
        p = self._vae_param()
        mel = self.mel(wave[..., :usable].to(p.device))                        # B M F
        post = self.vae.encode(mel.to(p.dtype))
        mean = post.mean.float().transpose(1, 2)                               # B La C
        std = post.std.float().transpose(1, 2)                                 # B La C
        if normalize:
            mean = (mean - self.latent_mean) / self.latent_std
            std = std / self.latent_std
        return mean, std

    # ------------------------------------------------------------ decode
    def latents_to_mel(self, z: torch.Tensor, *, latent_mean: torch.Tensor | None = None,
                       latent_std: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised latents [B,La,C] -> mono log-mel [B,M,F] (float32).

        `latent_mean`/`latent_std` [C] override the codec's statistics: latents sampled by a network
        carry that network's (they define the space it was trained in).
        """
        if z.dim() != 3 or z.shape[-1] != self.cfg.latent_channels:
            raise ValueError(f"decode_latents expects normalised latents [B, La, {self.cfg.latent_channels}], "
                             f"got {tuple(z.shape)}; is this codec the one the network was trained with?")
        p = self._vae_param()
        mean = self.latent_mean if latent_mean is None else latent_mean.to(p.device, torch.float32).flatten()
        std = self.latent_std if latent_std is None else latent_std.to(p.device, torch.float32).flatten()
        raw = z.to(device=p.device, dtype=torch.float32) * std + mean          # B La C
        return self.vae.decode(raw.transpose(1, 2).to(p.dtype)).float()      # B M F

    def to_stereo(self, mel: torch.Tensor, visual: torch.Tensor | None = None) -> torch.Tensor:
        """Mono log-mel [B,M,F] -> [B,2,M,F]; without a Mono2Stereo module both channels are the mono mel."""
        if self.mono2stereo is None:
            return torch.stack([mel, mel], dim=1)                              # B 2 M F
        p = next(self.mono2stereo.parameters())
        v = None if visual is None else visual.to(device=p.device, dtype=p.dtype)
        return self.mono2stereo(mel.to(device=p.device, dtype=p.dtype), visual=v).float()

    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B,Ch,M,F] -> waveform [B,Ch,F·hop] (each channel vocoded on its own)."""
        b, ch = mel.shape[:2]
        params = list(self.vocoder.parameters())
        flat = mel.flatten(0, 1)                                               # B*Ch M F
        if params:
            flat = flat.to(device=params[0].device, dtype=params[0].dtype)
        wave = self.vocoder(flat)                                              # B*Ch 1 T
        return wave.reshape(b, ch, -1).float()                                 # B Ch T

    def decode_latents(self, z: torch.Tensor, *, visual: torch.Tensor | None = None, stereo: bool = True,
                       num_samples: int | None = None) -> torch.Tensor:
        """Normalised latents [B,La,C] (+ visual [B,Lv,Dv]) -> waveform [B,2|1,T] in [-1, 1].

        T = num_samples when given (trimmed or zero-padded), else La·samples_per_latent.
        """
        mel = self.latents_to_mel(z)                                           # B M F
        mels = self.to_stereo(mel, visual) if stereo else mel[:, None]         # B Ch M F
        wave = self.vocode(mels).clamp(-1.0, 1.0)                              # B Ch T
        return wave if num_samples is None else fit_samples(wave, num_samples)

    def reconstruct(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [B,T] -> its mono round trip [B,T] (posterior mean -> decode -> vocode), same length."""
        mean, _ = self.encode_audio(wave)
        return self.decode_latents(mean, stereo=False, num_samples=wave.shape[-1])[:, 0]


def _codec_preset_for(vae: nn.Module) -> CodecConfig:
    n_mels = vae.n_mels
    for cfg in CODEC_PRESETS.values():
        if cfg.n_mels == n_mels and cfg.latent_channels == vae.latent_channels:
            return cfg
    for cfg in CODEC_PRESETS.values():
        if cfg.n_mels == n_mels:
            return replace(cfg, latent_channels=vae.latent_channels)
    raise ValueError(f"no codec preset has {n_mels} mel bins; known presets: "
                     + ", ".join(f"{k} ({c.n_mels} mels)" for k, c in CODEC_PRESETS.items()))


def _latent_stats(path: Path) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A DiT safetensors file -> its (latent_mean, latent_std), read without loading the network."""
    if path.suffix != ".safetensors":
        return None, None
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        if {"latent_mean", "latent_std"} <= keys:
            return f.get_tensor("latent_mean"), f.get_tensor("latent_std")
    return None, None


def codec_from_roles(roles: dict[str, Path], *, preset: str | None = None,
                     latent_mean: torch.Tensor | None = None, latent_std: torch.Tensor | None = None) -> AudioCodec:
    """{role: path} of a model folder (vae required; vocoder, mono2stereo, dit optional) -> AudioCodec.

    The latent statistics come from the arguments, else from the DiT file's header; the codec
    preset from `preset`, else from the VAE's mel bins. No vocoder file means Griffin-Lim.
    """
    from .load import load_vae, load_vocoder
    from .mono2stereo import load_mono2stereo
    if "vae" not in roles:
        raise FileNotFoundError("a codec needs a Mel-VAE file (role 'vae')")
    vae = load_vae(roles["vae"])
    cfg = CODEC_PRESETS[preset] if preset in CODEC_PRESETS else _codec_preset_for(vae)
    if cfg.n_mels != vae.n_mels or cfg.latent_channels != vae.latent_channels:
        cfg = replace(cfg, n_mels=vae.n_mels, latent_channels=vae.latent_channels)
    vocoder = load_vocoder(roles["vocoder"]) if "vocoder" in roles else None
    m2s = load_mono2stereo(roles["mono2stereo"]) if "mono2stereo" in roles else None
    if latent_mean is None and "dit" in roles:
        latent_mean, latent_std = _latent_stats(roles["dit"])
    log.info("codec: %s, vocoder %s", type(vae).__name__,
             type(vocoder).__name__ if vocoder is not None else "Griffin-Lim")
    return AudioCodec(cfg, vae, latent_mean, latent_std, vocoder=vocoder, mono2stereo=m2s).eval()


def load_audio_codec(path: str | Path, *, device=None) -> AudioCodec:
    """A Mel-VAE file, or a model folder (manifest.json roles vae/vocoder/mono2stereo/dit) -> AudioCodec.

    A lone VAE file gets identity latent statistics and Griffin-Lim; a folder's vocoder and
    Mono2Stereo are used when it names them, and its DiT file's latent statistics when present.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"codec path not found: {path} (give a Mel-VAE file or a model folder)")
    preset = None
    if path.is_dir():
        manifest = path / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{path} has no manifest.json naming its vae file; give the VAE file itself")
        data = json.loads(manifest.read_text())
        roles = {r: path / n for r, n in data.get("components", {}).items() if n}
        preset = data.get("codec")
        if "vae" not in roles:
            raise FileNotFoundError(f"{manifest} names no vae file; a codec needs one")
    else:
        roles = {"vae": path}
    codec = codec_from_roles(roles, preset=preset)
    return codec if device is None else codec.to(device)
