"""`python -m kf_core extract`: run the frozen encoders once over datasets and write feature shards.

Dataset descriptions (several may be mixed in one run):
  synthetic:N                 N clips of the procedural audio-visual world (kf_core.data.synthetic)
  videos:DIR[,captions.csv]   a folder of videos (audio track = target) + optional CSV "file,caption"
  audiocaps:CSV[,AUDIO_DIR]   audio-text pairs, CSV "file,caption" (VGGSound/AudioCaps-like layouts)
The work per clip is `FeatureExtractor.record(clip)`; the encoders and codec are injected, so the
same code serves kf-tiny's encoders, the paper's, and test doubles. `build_extractor` takes them
from a model folder (the bundled kf-tiny by default); the frames reach the encoders through the
same timestamp sampling (`kf_core.io.frames_from_images`) the generation pipeline uses.

Mono: a stereo clip's mono target is the mean of its channels in the *linear mel* domain (then
the codec's log), the identity Mono2Stereo preserves, so generated mono mels split back into
stereo consistently (`MonoLogMel`).

Shape legend: T samples, M mel bins, F mel frames, La latent tokens, C latent channels.
"""
from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .features import FeatureRecord, write_shard

__all__ = ["Clip", "FeatureExtractor", "MonoLogMel", "make_extractor", "build_extractor", "synthetic_clips",
           "video_folder_clips", "audio_caption_clips",
           "parse_spec", "read_caption_csv", "extract", "add_arguments", "main"]

log = logging.getLogger(__name__)


@dataclass
class Clip:
    """One training example before encoding: mono audio and optional frames and caption."""

    wave: torch.Tensor                       # T mono, or 2 T stereo, at the codec's sample rate
    duration: float
    visual_frames: torch.Tensor | None = None  # N 3 H W at visual_fps, in the form visual_fn takes
    sync_frames: torch.Tensor | None = None    # N 3 S S at sync_fps, in the form sync_fn takes
    caption: str | None = None
    seconds_start: float = 0.0
    seconds_total: float | None = None
    source: str = ""


class FeatureExtractor:
    """Clip -> FeatureRecord with the codec posterior in the normalised latent space.

    mel_fn(wave [1,T] or [1,2,T]) -> [1,M,F]; vae.encode(mel) -> posterior(.mean, .logvar) [1,C,La];
    normalise(mean, std) -> (mean', std') applies the codec's latent normalisation;
    visual_fn(frames) -> [Lv,Dv]; sync_fn(frames [1,N,3,224,224]) -> [1,Ls,Ds];
    text_fn(list[str]) -> (feats [1,Lt,Dt], mask [1,Lt]).
    """

    def __init__(self, *, mel_fn: Callable, vae, normalise: Callable, visual_fn: Callable | None = None,
                 sync_fn: Callable | None = None, text_fn: Callable | None = None) -> None:
        self.mel_fn, self.vae, self.normalise = mel_fn, vae, normalise
        self.visual_fn, self.sync_fn, self.text_fn = visual_fn, sync_fn, text_fn

    @torch.no_grad()
    def record(self, clip: Clip) -> FeatureRecord:
        mel = self.mel_fn(clip.wave[None].float())                       # 1 M F
        post = self.vae.encode(mel)
        mean, std = self.normalise(post.mean, (0.5 * post.logvar).exp())  # 1 C La
        rec = dict(latent_mean=mean[0].transpose(0, 1).contiguous(),       # La C
                   latent_std=std[0].transpose(0, 1).contiguous(),
                   duration=clip.duration, seconds_start=clip.seconds_start,
                   seconds_total=clip.seconds_total, caption=clip.caption or "", source=clip.source)
        if clip.visual_frames is not None and clip.sync_frames is not None:
            if self.visual_fn is None or self.sync_fn is None:
                raise ValueError("clips with video need visual and sync encoders; none were given")
            rec["visual"] = self.visual_fn(clip.visual_frames)             # Lv Dv
            rec["sync"] = self.sync_fn(clip.sync_frames[None])[0]           # Ls Ds
        if clip.caption:
            if self.text_fn is None:
                raise ValueError("clips with captions need a text encoder; none was given")
            feats, mask = self.text_fn([clip.caption])
            rec["text"], rec["text_mask"] = feats[0], mask[0]               # Lt Dt, Lt
        return FeatureRecord(**rec)


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """"kind:arg1,arg2" -> (kind, [arg1, arg2]), checking the kind."""
    kind, _, rest = spec.partition(":")
    if kind not in ("synthetic", "videos", "audiocaps", "shards") or not rest:
        raise ValueError(f"bad dataset description {spec!r}; use synthetic:N, videos:DIR[,captions.csv], "
                         "audiocaps:CSV[,AUDIO_DIR] or shards:DIR")
    return kind, rest.split(",")


def read_caption_csv(path: str | Path) -> dict[str, str]:
    """CSV with a header naming a file column (file/path/youtube_id/audiocap_id) and a caption column."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} has no rows")
    keys = {k.lower(): k for k in rows[0]}
    file_col = next((keys[k] for k in ("file", "path", "filename", "youtube_id", "audiocap_id", "video") if k in keys), None)
    cap_col = next((keys[k] for k in ("caption", "label", "text") if k in keys), None)
    if file_col is None or cap_col is None:
        raise ValueError(f"{path}: need a file column (file/path/youtube_id) and a caption column "
                         f"(caption/label/text); found {list(rows[0])}")
    return {r[file_col]: r[cap_col] for r in rows}


def extract(clips: Iterable[Clip], extractor: FeatureExtractor, out: str | Path, *, codec: dict,
            shard_size: int = 256, prefix: str = "shard") -> list[Path]:
    """Encode clips and write shards of `shard_size` records to OUT/{prefix}_{i:05d}.safetensors."""
    out = Path(out)
    written, batch = [], []

    def flush():
        if batch:
            written.append(write_shard(batch, out / f"{prefix}_{len(written):05d}.safetensors", codec=codec))
            batch.clear()

    for clip in clips:
        batch.append(extractor.record(clip))
        if len(batch) >= shard_size:
            flush()
    flush()
    log.info("wrote %d shard(s) to %s", len(written), out)
    return written


class MonoLogMel:
    """wave [B,T] -> log-mel [B,M,F]; stereo [B,2,T] -> log of the channels' mean in linear mel."""

    def __init__(self, mel) -> None:
        self.mel = mel  # kf_core.codec.mel.MelSpectrogram

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        from ..codec.mel import log_compress, log_expand
        cfg = self.mel.cfg
        if wave.dim() == 2:
            return self.mel(wave)                                              # B M F
        if wave.dim() != 3 or wave.shape[1] not in (1, 2):
            raise ValueError(f"expected waves [B, T] or [B, 1|2, T], got {tuple(wave.shape)}")
        lr = self.mel(wave.flatten(0, 1)).unflatten(0, wave.shape[:2])         # B Ch M F
        return log_compress(log_expand(lr, cfg.log).mean(1), cfg.log, cfg.log_floor)


def make_extractor(*, vae, codec_cfg, latent_mean: torch.Tensor, latent_std: torch.Tensor, clip=None,
                   sync=None, text=None) -> FeatureExtractor:
    """A Mel-VAE, its latent statistics [C] and the frozen encoders -> FeatureExtractor.

    The encoders are called exactly as the pipeline calls them (`components.VisualEncoders`):
    CLIP on uint8 frames [Lv,3,S,S], Synchformer on uint8 frames [1,Ts,3,S',S'] mapped to [-1, 1].
    """
    from ..codec.mel import MelSpectrogram
    from ..encoders import sync_frames_from_uint8
    mean = latent_mean.float().reshape(1, -1, 1)
    std = latent_std.float().reshape(1, -1, 1)

    def normalise(m: torch.Tensor, s: torch.Tensor):
        return (m - mean) / std, s / std                                       # 1 C La

    def sync_fn(frames: torch.Tensor) -> torch.Tensor:
        return sync.encode_video(sync_frames_from_uint8(frames)).float()      # 1 Ls Ds

    def text_fn(prompts: list[str]):
        feats, mask = text.encode(prompts)
        return feats.float(), (mask if mask is not None else torch.ones(feats.shape[:2], dtype=torch.bool))

    ex = FeatureExtractor(mel_fn=MonoLogMel(MelSpectrogram(codec_cfg)), vae=vae, normalise=normalise,
                          visual_fn=None if clip is None else (lambda f: clip.encode_frames(f).float()),
                          sync_fn=None if sync is None else sync_fn, text_fn=None if text is None else text_fn)
    ex.codec_cfg = codec_cfg
    ex.visual_size = None if clip is None else (clip.spec.resize_to or clip.spec.image_size)
    ex.sync_size = None if sync is None else sync.cfg.image_size
    ex.sync_mode = "crop" if sync is None else sync.cfg.resize
    return ex


def _whole_tokens(wave: torch.Tensor, seq) -> torch.Tensor:
    """[C, T] -> [C, decoded_samples]: zero-padded or cut to whole latent tokens (as the decoder makes)."""
    n = seq.decoded_samples
    return torch.nn.functional.pad(wave, (0, max(0, n - wave.shape[-1])))[..., :n]


def _seq(duration: float, cfg):
    """Duration (s) + the codec's CodecConfig -> SeqConfig at the codec's rates."""
    from ..config import SeqConfig
    return SeqConfig(duration, sample_rate=cfg.sample_rate, hop=cfg.hop, latent_downsample=cfg.latent_downsample)


def synthetic_clips(n: int, *, seed: int, visual_size: int, sync_size: int, sample_rate: int = 44100,
                    hop: int = 512, latent_downsample: int = 2, split: str = "train",
                    start: int = 0) -> Iterator[Clip]:
    """Clips start..n-1 of the synthetic world's `split` -> Clips with stereo audio padded to whole
    latent tokens and uint8 frames sampled by time at 8 fps (visual) and 25 fps (sync)."""
    for i in range(start, n):
        yield synthetic_clip(i, seed=seed, visual_size=visual_size, sync_size=sync_size,
                             sample_rate=sample_rate, hop=hop, latent_downsample=latent_downsample, split=split)


def synthetic_clip(index: int, *, seed: int, visual_size: int, sync_size: int, sample_rate: int = 44100,
                   hop: int = 512, latent_downsample: int = 2, split: str = "train",
                   duration: float | None = None, sync_mode: str = "crop") -> Clip:
    """One synthetic clip (item `index` of `split`) -> Clip ready for `FeatureExtractor.record`."""
    from ..config import SeqConfig
    from ..data.dataset import split_seed
    from ..data.synthetic import make_clip
    from ..io import frames_from_images, streams_for
    c = make_clip(split_seed(index, seed, split), duration=duration, sample_rate=sample_rate)
    seq = SeqConfig(c.duration, sample_rate=sample_rate, hop=hop, latent_downsample=latent_downsample)
    # whole latent tokens: the mel then has exactly 2·La frames, as the decoder makes
    wave = _whole_tokens(torch.from_numpy(c.audio), seq)                       # 2 T
    images = torch.from_numpy(c.frames)                                        # N H W 3 uint8
    streams = streams_for(seq, visual_size=visual_size, sync_size=sync_size, sync_mode=sync_mode)
    frames = {name: frames_from_images(images, c.fps, spec.fps, size=spec.size, mode=spec.mode,
                                       count=spec.count, duration=c.duration, min_count=spec.min_count)
              for name, spec in streams.items()}
    return Clip(wave=wave, duration=c.duration, visual_frames=frames["visual"], sync_frames=frames["sync"],
                caption=c.caption, source=f"synthetic/{split}/{seed}/{index}")


VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")


def video_folder_clips(folder: str | Path, captions_csv: str | Path | None,
                       extractor: FeatureExtractor) -> Iterator[Clip]:
    """`videos:DIR[,captions.csv]` -> one Clip per video file in DIR (sorted, not recursive): its
    audio track is the target, its frames are sampled by time exactly as generation samples them,
    its caption comes from the CSV (matched by file name, with or without extension).

    Videos without an audio track, unreadable files and clips too short for the sync encoder are
    skipped with a warning; a folder with no usable video raises ValueError."""
    from ..io import MediaError, probe, read_audio, sample_streams, streams_for
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"videos:{folder}: not a folder; give a folder of video files")
    captions = read_caption_csv(captions_csv) if captions_csv else {}
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    cfg, used = extractor.codec_cfg, 0
    for path in files:
        try:
            info = probe(path)
            if not info.has_audio:
                raise MediaError(path, "has no audio track, so there is nothing to learn from",
                                 "add videos with sound")
            wave, _ = read_audio(path, sample_rate=cfg.sample_rate)                       # C T
            duration = min(info.duration, wave.shape[-1] / cfg.sample_rate)
            seq = _seq(duration, cfg)
            specs = streams_for(seq, visual_size=extractor.visual_size, sync_size=extractor.sync_size,
                                sync_mode=extractor.sync_mode)
            frames = sample_streams(path, specs, duration=duration)
        except (MediaError, ValueError) as err:
            log.warning("videos: skipping %s: %s", path.name, err)
            continue
        used += 1
        yield Clip(wave=_whole_tokens(wave, seq), duration=duration, visual_frames=frames["visual"],
                   sync_frames=frames["sync"], caption=captions.get(path.name, captions.get(path.stem)),
                   source=f"videos/{path.name}")
    if used == 0:
        raise ValueError(f"videos:{folder}: no usable video with sound among {len(files)} file(s) with "
                         f"suffixes {', '.join(VIDEO_SUFFIXES)}")


def audio_caption_clips(csv_path: str | Path, audio_dir: str | Path | None,
                        extractor: FeatureExtractor) -> Iterator[Clip]:
    """`audiocaps:CSV[,AUDIO_DIR]` -> one text-only Clip (no frames) per CSV row whose audio file is
    found in AUDIO_DIR (default: the CSV's folder), as named or with an audio suffix added."""
    from ..io import MediaError, read_audio
    base = Path(audio_dir) if audio_dir else Path(csv_path).parent
    rows = read_caption_csv(csv_path)
    cfg, used = extractor.codec_cfg, 0
    for name, caption in rows.items():
        path = next((c for c in [base / name, *(base / f"{name}{s}" for s in AUDIO_SUFFIXES)] if c.is_file()), None)
        if path is None:
            log.warning("audiocaps: skipping %r: no such audio file in %s", name, base)
            continue
        try:
            wave, _ = read_audio(path, sample_rate=cfg.sample_rate)                       # C T
            seq = _seq(wave.shape[-1] / cfg.sample_rate, cfg)
        except (MediaError, ValueError) as err:
            log.warning("audiocaps: skipping %s: %s", path.name, err)
            continue
        used += 1
        yield Clip(wave=_whole_tokens(wave, seq), duration=seq.duration, caption=caption,
                   source=f"audiocaps/{path.name}")
    if used == 0:
        raise ValueError(f"audiocaps:{csv_path}: none of its {len(rows)} rows names an audio file found in {base}")


def _sources(specs: list[str], extractor: FeatureExtractor, seed: int) -> Iterator[tuple[str, Iterable[Clip]]]:
    for spec in specs:
        kind, args = parse_spec(spec)
        if kind == "synthetic":
            cfg = extractor.codec_cfg
            yield spec, synthetic_clips(int(args[0]), seed=seed, visual_size=extractor.visual_size,
                                        sync_size=extractor.sync_size, sample_rate=cfg.sample_rate,
                                        hop=cfg.hop, latent_downsample=cfg.latent_downsample)
        elif kind == "videos":
            yield spec, video_folder_clips(args[0], args[1] if len(args) > 1 else None, extractor)
        elif kind == "audiocaps":
            yield spec, audio_caption_clips(args[0], args[1] if len(args) > 1 else None, extractor)
        else:
            raise ValueError(f"{spec}: feature shards are read directly by `train --data shards:DIR`; "
                             "extract reads synthetic:, videos: and audiocaps: descriptions")


def add_arguments(p) -> None:
    p.add_argument("--data", action="append", required=True, help="dataset description (repeatable)")
    p.add_argument("--preset", default="kf-tiny",
                   help="frozen encoders/codec: kf-tiny (bundled) or a model folder")
    p.add_argument("--out", required=True, help="folder for the feature shards")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)


def build_extractor(preset: str) -> tuple[FeatureExtractor, dict]:
    """"kf-tiny" (the bundled model) or a model folder -> (FeatureExtractor with its frozen encoders,
    Mel-VAE and latent statistics, codec layout dict for the shards)."""
    from ..components import load_components
    comps = load_components(None if preset == "kf-tiny" else preset)
    c = comps.codec
    ex = make_extractor(vae=c.vae, codec_cfg=c.cfg, latent_mean=c.latent_mean, latent_std=c.latent_std,
                        clip=comps.visual_encoders.clip, sync=comps.visual_encoders.sync,
                        text=comps.text_encoder)
    return ex, {"sample_rate": c.cfg.sample_rate, "hop": c.cfg.hop, "latent_downsample": c.cfg.latent_downsample}


def main(args) -> int:
    extractor, codec = build_extractor(args.preset)
    for i, (spec, clips) in enumerate(_sources(args.data, extractor, args.seed)):
        paths = extract(clips, extractor, args.out, codec=codec, shard_size=args.shard_size, prefix=f"src{i}")
        print(f"{spec}: {len(paths)} shard(s) in {args.out}")
    return 0
