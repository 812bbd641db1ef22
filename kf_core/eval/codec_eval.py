"""`python -m kf_core eval codec --audio DIR`: codec reconstruction metrics of paper Table 3.

Every audio file in DIR (recursively; mixed to mono, resampled to the codec rate, cut to
`--max-seconds`) is encoded to latents (posterior mean), decoded to a mel and vocoded; the
reconstruction is scored against the input with PESQ (wideband, where the audio allows it),
SI-SDR, SDR, LSD, MCD, mel loss and STFT loss (definitions in kf_core.eval.metrics). Per-file
rows and the average are printed, and written as JSON with `--json`.

`--vocoder-only` skips the VAE: mel -> vocoder (Griffin-Lim unless `--vocoder` names a BigVGAN
file), which needs no trained weights and bounds what any Mel-VAE can reach with that vocoder.
Without trained codec weights the full mode stops with a message; it never reports numbers
of an untrained codec.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from kf_core.config import CODEC_PRESETS, CodecConfig
from kf_core.eval.metrics import codec_metrics

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")
METRICS = ("pesq", "si_sdr", "sdr", "lsd", "mcd", "mel_loss", "stft_loss")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audio", type=Path, required=True, help="folder of audio files (searched recursively)")
    p.add_argument("--codec", default="kf-tiny",
                   help="kf-tiny (bundled), a model folder with manifest.json, or a Mel-VAE file")
    p.add_argument("--vocoder-only", action="store_true",
                   help="mel -> vocoder only (no VAE); Griffin-Lim unless --vocoder is given")
    p.add_argument("--vocoder", type=Path, default=None, help="BigVGAN file/folder for --vocoder-only")
    p.add_argument("--preset", choices=sorted(CODEC_PRESETS), default="44k",
                   help="mel front end for --vocoder-only (default 44k)")
    p.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations (when the vocoder is Griffin-Lim)")
    p.add_argument("--limit", type=int, default=None, help="only the first N files")
    p.add_argument("--max-seconds", type=float, default=10.0, help="cut each file to this length")
    p.add_argument("--no-pesq", action="store_true", help="skip PESQ (slow on long files)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    p.add_argument("--json", type=Path, default=None, help="also write per-file rows and the mean here")


def find_audio(folder: Path, limit: int | None = None) -> list[Path]:
    """Folder -> sorted audio files in it (recursively), at most `limit`."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--audio {folder} is not a folder; give a folder of audio files")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {folder}")
    return files[:limit] if limit else files


class _VocoderOnly:
    """mel -> vocoder round trip: wave [1,T] -> reconstruction [1,T]."""

    def __init__(self, cfg: CodecConfig, vocoder: torch.nn.Module, device: torch.device) -> None:
        from kf_core.codec.mel import MelSpectrogram
        self.cfg, self.device = cfg, device
        self.front = MelSpectrogram(cfg).to(device)
        self.vocoder = vocoder.to(device).eval()

    @property
    def step(self) -> int:
        return self.cfg.hop

    def reconstruct(self, wave: torch.Tensor) -> torch.Tensor:
        return self.vocoder(self.front(wave.to(self.device)))[:, 0].float().cpu()


class _FullCodec:
    def __init__(self, codec, device: torch.device) -> None:
        self.codec, self.cfg = codec.to(device).eval(), codec.cfg
        self.device = device

    @property
    def step(self) -> int:
        return self.cfg.samples_per_latent

    def reconstruct(self, wave: torch.Tensor) -> torch.Tensor:
        return self.codec.reconstruct(wave.to(self.device)).float().cpu()


def _build(args) -> tuple[object, str]:
    device = torch.device(args.device)
    if args.vocoder_only:
        if args.vocoder is not None:
            from kf_core.codec.load import load_vocoder
            voc = load_vocoder(args.vocoder)
            cfg = CODEC_PRESETS["44k"] if voc.sample_rate == 44100 else CODEC_PRESETS["16k"]
            return _VocoderOnly(cfg, voc, device), f"mel -> BigVGAN ({args.vocoder.name})"
        from kf_core.codec.griffinlim import GriffinLim
        cfg = CODEC_PRESETS[args.preset]
        return _VocoderOnly(cfg, GriffinLim(cfg, n_iter=args.gl_iters), device), \
            f"mel -> Griffin-Lim ({args.gl_iters} iterations, {args.preset})"
    from kf_core.codec.bundle import load_audio_codec
    path = Path(args.codec)
    if args.codec == "kf-tiny":
        from kf_core.components import BUNDLED_DIR
        path = BUNDLED_DIR
        if not (path / "manifest.json").is_file():
            raise FileNotFoundError(
                f"no trained codec weights: the bundled kf-tiny ({path}) is not in this install yet. "
                "Train it (python -m kf_core train-tiny), give --codec with a model folder or a Mel-VAE file "
                "(e.g. MMAudio's v1-44.pth), or measure the vocoder alone with --vocoder-only.")
    codec = load_audio_codec(path)
    from kf_core.codec.griffinlim import GriffinLim
    if isinstance(codec.vocoder, GriffinLim):
        codec.vocoder.n_iter = args.gl_iters
    return _FullCodec(codec, device), f"{type(codec.vae).__name__} ({path.name}) -> {type(codec.vocoder).__name__}"


def _mean(rows: list[dict]) -> dict[str, float | None]:
    out = {}
    for k in METRICS:
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(args) -> int:
    from kf_core.io import read_audio
    try:
        runner, what = _build(args)
        files = find_audio(args.audio, args.limit)
    except FileNotFoundError as e:
        print(f"eval codec: {e}")
        return 2
    cfg = runner.cfg
    print(f"codec: {what}; {len(files)} file(s) at {cfg.sample_rate} Hz, mono, <= {args.max_seconds:g} s")
    rows = []
    for path in files:
        wave, _ = read_audio(path, sample_rate=cfg.sample_rate, mono=True)          # 1 T
        n = min(wave.shape[-1], int(args.max_seconds * cfg.sample_rate)) // runner.step * runner.step
        if n < 2 * runner.step:
            print(f"  skip {path.name}: {wave.shape[-1]} samples is shorter than {2 * runner.step}")
            continue
        ref = wave[:, :n]
        start = time.perf_counter()
        with torch.inference_mode():
            est = runner.reconstruct(ref)
        seconds = time.perf_counter() - start
        row = codec_metrics(ref[0], est[0], cfg, with_pesq=not args.no_pesq)
        row.update(file=str(path.relative_to(args.audio)), seconds=n / cfg.sample_rate, rtf=seconds / (n / cfg.sample_rate))
        rows.append(row)
    if not rows:
        print("eval codec: no file was long enough to score")
        return 2
    header = ["file"] + list(METRICS) + ["rtf"]
    width = max(len(r["file"]) for r in rows + [{"file": "mean"}])
    print("  ".join([header[0].ljust(width)] + [h.rjust(9) for h in header[1:]]))
    mean = _mean(rows)
    mean["rtf"] = sum(r["rtf"] for r in rows) / len(rows)
    for r in rows + [dict(mean, file="mean")]:
        print("  ".join([r["file"].ljust(width)] + [_fmt(r.get(h)).rjust(9) for h in header[1:]]))
    print("higher is better: pesq, si_sdr, sdr; lower is better: lsd, mcd, mel_loss, stft_loss; "
          "rtf = processing seconds per audio second")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"codec": what, "sample_rate": cfg.sample_rate, "files": rows,
                                         "mean": mean}, indent=2))
        print(f"wrote {args.json}")
    return 0
