"""The audio codec as one inference bundle: waveform <-> normalised latents, mono or stereo.

    codec = AudioCodec(cfg, vae, latent_mean, latent_std, vocoder=None, mono2stereo=None)
    wave = codec.decode_latents(z, visual=None, stereo=True, num_samples=n)   # z [B,La,C] normalised
    for block in codec.stream_waveform(z, num_samples=n): ...                 # the same, [B,Ch,n] blocks
    mean, std = codec.encode_audio(wave)                                      # [B,La,C] normalised

decode: un-normalise (z·std + mean) -> Mel-VAE decode -> Mono2Stereo (or L = R = mono without one)
-> vocoder on each channel -> trim/pad to `num_samples`, each stage in chunks (`chunking`) so an
hour-long clip needs no more memory than a short one. The VAE is anything with
`encode(mel [B,M,F]) -> posterior with .mean/.std [B,C,La]` and `decode(z [B,C,La]) -> mel [B,M,2La]`
(MelVAE, MMAudioVAE); the vocoder anything mapping mel [N,M,F] -> wave [N,1,F·hop] (Vocos, BigVGAN,
GriffinLim, the default). Latent normalisation belongs to the codec (DESIGN §3).

Shape legend: B batch, T samples, Ch audio channels, M mel bins, F mel frames, La latent frames,
C latent channels, Lv visual frames, Dv visual width.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as Fn
from torch import nn

from ..config import CODEC_PRESETS, CodecConfig
from ..errors import MissingFileError
from ..heap import release_free_memory
from ..loading.state import CheckpointError, file_in_folder, read_json
from .chunking import ChunkPlan, Tape, chunked, plan_for
from .griffinlim import GriffinLim
from .mel import MelSpectrogram
from .vocos import Vocos

__all__ = ["AudioCodec", "load_audio_codec", "codec_from_roles", "fit_samples", "fit_blocks",
           "DECODE_CHUNK_S", "VOCODE_CHUNK_S"]

log = logging.getLogger(__name__)

# Decoding in chunks (kf_core.codec.chunking), so memory does not grow with the clip's length.
# The Mel-VAE and Mono2Stereo hold clip-wide statistics: a clip up to DECODE_CHUNK_S is decoded in
# one piece, as before; longer ones in chunks of that length, crossfaded over DECODE_OVERLAP_S.
DECODE_CHUNK_S, DECODE_OVERLAP_S, DECODE_CONTEXT_S = 30.0, 1.0, 1.0
# Vocoders are local: chunks of VOCODE_CHUNK_S with their receptive field as context are exact.
VOCODE_CHUNK_S = 10.0


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

    # ------------------------------------------------------------ decode (chunked: memory flat in length)
    def _plans(self) -> tuple[ChunkPlan, ChunkPlan, ChunkPlan]:
        """(Mel-VAE plan in latent frames, Mono2Stereo plan in mel frames, vocoder plan in mel frames)."""
        mel_rate = self.cfg.sample_rate / self.cfg.hop
        lat_rate = mel_rate / self.cfg.latent_downsample
        context = getattr(self.vocoder, "context_frames", None)
        if context is None:
            context = int(round(mel_rate))  # a vocoder that does not state its field: 1 s either side
        return (plan_for(lat_rate, DECODE_CHUNK_S, DECODE_OVERLAP_S, round(DECODE_CONTEXT_S * lat_rate)),
                plan_for(mel_rate, DECODE_CHUNK_S, DECODE_OVERLAP_S, round(DECODE_CONTEXT_S * mel_rate)),
                plan_for(mel_rate, VOCODE_CHUNK_S, 0.0, int(context)))

    def _mel_blocks(self, z: torch.Tensor, latent_mean=None, latent_std=None) -> Iterator[torch.Tensor]:
        if z.dim() != 3 or z.shape[-1] != self.cfg.latent_channels:
            raise ValueError(f"decode_latents expects normalised latents [B, La, {self.cfg.latent_channels}], "
                             f"got {tuple(z.shape)}; is this codec the one the network was trained with?")
        p = self._vae_param()
        mean = self.latent_mean if latent_mean is None else latent_mean.to(p.device, torch.float32).flatten()
        std = self.latent_std if latent_std is None else latent_std.to(p.device, torch.float32).flatten()
        raw = (z.to(device=p.device, dtype=torch.float32) * std + mean).transpose(1, 2)  # B C La

        def decode(x: torch.Tensor, offset: int) -> torch.Tensor:
            with torch.inference_mode():
                return self.vae.decode(x.to(p.dtype)).float()                 # B M 2n

        return chunked(decode, lambda a, b: raw[..., a:b], raw.shape[-1], self._plans()[0],
                       ratio=self.cfg.latent_downsample)

    def _stereo_blocks(self, read, total: int, visual: torch.Tensor | None = None,
                       release=None) -> Iterator[torch.Tensor]:
        """Mono log-mel frames [0, total) by `read(a, b)` [B,M,n] -> stereo blocks [B,2,M,n] in order."""
        plan = self._plans()[1]
        m2s = self.mono2stereo
        if m2s is None:
            for a in range(0, total, plan.chunk):
                mono = read(a, min(total, a + plan.chunk))
                yield torch.stack([mono, mono], dim=1)                         # B 2 M n
                if release is not None:
                    release(min(total, a + plan.chunk))
            return
        p = next(m2s.parameters())
        v = None if visual is None else visual.to(device=p.device, dtype=p.dtype)

        def logits(x: torch.Tensor, offset: int) -> torch.Tensor:
            whole = offset == 0 and x.shape[-1] == total                       # as the unchunked module did
            with torch.inference_mode():
                return m2s.pan_logits(x.to(device=p.device, dtype=p.dtype), v,
                                      span=None if whole else (offset, total))   # B M n

        pos = 0
        for a in chunked(logits, read, total, plan):
            n = a.shape[-1]
            with torch.inference_mode():
                yield m2s.apply_pan(read(pos, pos + n).to(a), a).float()       # B 2 M n
            pos += n
            if release is not None:
                release(max(0, pos - plan.context))

    def _wave_blocks(self, read, total: int, release=None) -> Iterator[torch.Tensor]:
        """Log-mel frames [0, total) by `read(a, b)` [B,Ch,M,n] -> waveform blocks [B,Ch,n·hop] in order."""
        params = list(self.vocoder.parameters())
        # Griffin-Lim's random phase and Vocos's frame-position vectors are placed by frame index
        offset_aware = isinstance(self.vocoder, (GriffinLim, Vocos))

        def vocode(x: torch.Tensor, offset: int) -> torch.Tensor:
            b, ch = x.shape[:2]
            if ch > 1 and all(torch.equal(x[:, 0], x[:, c]) for c in range(1, ch)):
                # a centred mel (no Mono2Stereo: every channel the same) is vocoded once, not per channel
                return vocode(x[:, :1], offset).expand(b, ch, -1)
            flat = x.flatten(0, 1)                                             # B*Ch M n
            if params:
                flat = flat.to(device=params[0].device, dtype=params[0].dtype)
            with torch.inference_mode():
                wave = self.vocoder(flat, frame_offset=offset) if offset_aware else self.vocoder(flat)  # B*Ch 1 T
            return wave.reshape(b, ch, -1).float()                             # B Ch T

        hop = getattr(self.vocoder, "hop", self.cfg.hop)
        return chunked(vocode, read, total, self._plans()[2], ratio=hop, release=release)

    def latents_to_mel(self, z: torch.Tensor, *, latent_mean: torch.Tensor | None = None,
                       latent_std: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised latents [B,La,C] -> mono log-mel [B,M,F] (float32), decoded in crossfaded chunks
        of DECODE_CHUNK_S seconds (a shorter clip in one piece).

        `latent_mean`/`latent_std` [C] override the codec's statistics: latents sampled by a network
        carry that network's (they define the space it was trained in).
        """
        return torch.cat(list(self._mel_blocks(z, latent_mean, latent_std)), dim=-1)   # B M F

    def to_stereo(self, mel: torch.Tensor, visual: torch.Tensor | None = None) -> torch.Tensor:
        """Mono log-mel [B,M,F] -> [B,2,M,F]; without a Mono2Stereo module both channels are the mono mel."""
        return torch.cat(list(self._stereo_blocks(lambda a, b: mel[..., a:b], mel.shape[-1], visual)), dim=-1)

    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel [B,Ch,M,F] -> waveform [B,Ch,F·hop] (each channel vocoded on its own, in chunks of
        VOCODE_CHUNK_S seconds with the vocoder's receptive field as context: the same as in one piece;
        identical channels, a centred mel, are vocoded once)."""
        return torch.cat(list(self._wave_blocks(lambda a, b: mel[..., a:b], mel.shape[-1])), dim=-1)

    def stream_waveform(self, z: torch.Tensor, *, latent_mean: torch.Tensor | None = None,
                        latent_std: torch.Tensor | None = None, visual: torch.Tensor | None = None,
                        stereo: bool = True, num_samples: int | None = None) -> Iterator[torch.Tensor]:
        """Normalised latents [B,La,C] (+ visual [B,Lv,Dv] of the whole clip) -> waveform blocks
        [B,Ch,n] in [-1, 1], in order, totalling num_samples (else La·samples_per_latent).

        The same numbers as latents_to_mel -> to_stereo -> vocode, but only a few chunks of mel and
        wave are alive at any time, so memory does not grow with the clip's length."""
        frames = z.shape[1] * self.cfg.latent_downsample
        mono = Tape(self._mel_blocks(z, latent_mean, latent_std), frames)
        if stereo:
            mels = Tape(self._stereo_blocks(mono.read, frames, visual, mono.release), frames)
            read, release = mels.read, mels.release
        else:
            read, release = (lambda a, b: mono.read(a, b)[:, None]), mono.release
        blocks = (w.clamp(-1.0, 1.0) for w in self._wave_blocks(read, frames, release))
        for block in (blocks if num_samples is None else fit_blocks(blocks, num_samples)):
            yield block
            release_free_memory()      # the chunks' scratch, so the heap does not creep with the clip

    def decode_latents(self, z: torch.Tensor, *, visual: torch.Tensor | None = None, stereo: bool = True,
                       num_samples: int | None = None) -> torch.Tensor:
        """Normalised latents [B,La,C] (+ visual [B,Lv,Dv]) -> waveform [B,2|1,T] in [-1, 1].

        T = num_samples when given (trimmed or zero-padded), else La·samples_per_latent.
        """
        return torch.cat(list(self.stream_waveform(z, visual=visual, stereo=stereo, num_samples=num_samples)),
                         dim=-1)

    def reconstruct(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [B,T] -> its mono round trip [B,T] (posterior mean -> decode -> vocode), same length."""
        mean, _ = self.encode_audio(wave)
        return self.decode_latents(mean, stereo=False, num_samples=wave.shape[-1])[:, 0]


def fit_blocks(blocks: Iterable[torch.Tensor], samples: int) -> Iterator[torch.Tensor]:
    """Waveform blocks [..., n] -> blocks totalling exactly `samples` (tail cut, or zeros appended)."""
    sent, last = 0, None
    for x in blocks:
        last = x
        take = min(x.shape[-1], samples - sent)
        if take > 0:
            sent += take
            yield x[..., :take]
    if sent < samples:
        if last is None:
            raise ValueError("no audio blocks to fit")
        yield last.new_zeros(*last.shape[:-1], samples - sent)


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
        raise MissingFileError("a codec needs a Mel-VAE file (role 'vae')")
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
        raise MissingFileError(f"codec path not found: {path} (give a Mel-VAE file or a model folder)")
    preset = None
    if path.is_dir():
        manifest = path / "manifest.json"
        if not manifest.is_file():
            raise MissingFileError(f"{path} has no manifest.json naming its vae file; give the VAE file itself")
        data = read_json(manifest, what="model manifest")
        components = data.get("components", {})
        if not isinstance(components, dict):
            raise CheckpointError(f"{manifest}: \"components\" must be an object mapping roles to file names")
        roles = {r: file_in_folder(path, n, where=str(manifest), what=r) for r, n in components.items() if n}
        preset = data.get("codec")
        if "vae" not in roles:
            raise MissingFileError(f"{manifest} names no vae file; a codec needs one")
    else:
        roles = {"vae": path}
    codec = codec_from_roles(roles, preset=preset)
    return codec if device is None else codec.to(device)
