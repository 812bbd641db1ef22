"""`python -m kf_core eval codec`: codec reconstruction metrics of paper Table 3.

Sources (any mix): `--audio DIR` (every audio file in DIR, recursively), `--synthetic N`
(N held-out clips of the synthetic world, classes cycling, `--synthetic-seconds` long: seeds
that no trainer draws), `--chirp` (a 100 Hz -> 10 kHz log sweep, a sound outside that world).
Each is mixed to mono, resampled to the codec rate, cut to `--max-seconds`, encoded to latents
(posterior mean), decoded to a mel and vocoded; the reconstruction is scored against the input
with PESQ (wideband, where the audio allows it), SI-SDR, SDR, LSD, MCD, mel loss and STFT loss
(definitions in kf_core.eval.metrics) and the real-time factor (seconds of processing per second
of audio, on `--threads` CPU threads). Per-file rows and the average are printed, and written as
JSON with `--json`.

`--vocoder-only` skips the VAE: mel -> vocoder, which needs no trained VAE and bounds what any
Mel-VAE can reach with that vocoder. `--vocoder` picks the vocoder in either mode: `gl`
(Griffin-Lim), a vocoder file (Vocos or BigVGAN) or a BigVGAN folder; by default the codec
folder's own vocoder (Griffin-Lim when it names none, and in --vocoder-only mode). Without
trained codec weights the full mode stops with a message; it never reports numbers of an
untrained codec.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import torch

from kf_core.config import CODEC_PRESETS, CodecConfig
from kf_core.eval.metrics import codec_metrics

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac")
METRICS = ("pesq", "si_sdr", "sdr", "lsd", "mcd", "mel_loss", "stft_loss")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audio", type=Path, default=None, help="folder of audio files (searched recursively)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N", help="add N held-out synthetic clips")
    p.add_argument("--synthetic-seconds", type=float, default=5.0, help="length of each synthetic clip")
    p.add_argument("--seed", type=int, default=0, help="base seed of the held-out synthetic clips")
    p.add_argument("--chirp", action="store_true", help="add a 5 s log chirp 100 Hz -> 10 kHz (outside the world)")
    p.add_argument("--codec", default="kf-tiny",
                   help="kf-tiny (bundled), a model folder with manifest.json, or a Mel-VAE file")
    p.add_argument("--vocoder-only", action="store_true", help="mel -> vocoder only (no VAE)")
    p.add_argument("--vocoder", default=None,
                   help="gl (Griffin-Lim), a vocoder file (Vocos/BigVGAN) or BigVGAN folder; default: the "
                        "codec's own (Griffin-Lim in --vocoder-only mode)")
    p.add_argument("--preset", choices=sorted(CODEC_PRESETS), default="44k",
                   help="mel front end for --vocoder-only with Griffin-Lim (default 44k)")
    p.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations (when the vocoder is Griffin-Lim)")
    p.add_argument("--limit", type=int, default=None, help="only the first N files of --audio")
    p.add_argument("--max-seconds", type=float, default=10.0, help="cut each file to this length")
    p.add_argument("--no-pesq", action="store_true", help="skip PESQ (slow on long files)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads while timing (default: torch's)")
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


def heldout_synthetic(n: int, seconds: float, seed: int, sample_rate: int) -> list[tuple[str, torch.Tensor]]:
    """n held-out synthetic clips (classes cycle) -> [(name, mono wave [1,T])]."""
    from kf_core.eval.synthetic_eval import heldout_clips
    clips, _ = heldout_clips(n, seed, seconds)
    out = []
    for i, c in enumerate(clips):
        wave = torch.from_numpy(c.audio).mean(0, keepdim=True)                    # 1 T at 44.1 kHz
        if sample_rate != c.sample_rate:
            from kf_core.io import resample
            wave = resample(wave, c.sample_rate, sample_rate)
        out.append((f"heldout_{i:02d}_{c.labels[0]}", wave))
    return out


def chirp(sample_rate: int, seconds: float = 5.0, f0: float = 100.0, f1: float = 10_000.0) -> torch.Tensor:
    """A log sine sweep f0 -> f1 at 0.5 amplitude with 10 ms fades -> mono wave [1,T]."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    k = math.log(f1 / f0)
    wave = 0.5 * torch.sin(2 * math.pi * f0 * seconds / k * (torch.exp(t / seconds * k) - 1))
    fade = torch.clamp(torch.minimum(t, seconds - t) / 0.01, max=1.0)
    return (wave * fade).float()[None]


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


def _vocoder(spec: str | None, cfg: CodecConfig, gl_iters: int):
    """--vocoder value -> (module or None for "the codec's own", description)."""
    from kf_core.codec.griffinlim import GriffinLim
    if spec is None:
        return None, None
    if spec.lower() in ("gl", "griffin-lim", "griffinlim"):
        return GriffinLim(cfg, n_iter=gl_iters), f"Griffin-Lim ({gl_iters} iterations)"
    from kf_core.codec.load import load_vocoder
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"--vocoder {spec}: not found; give gl, a vocoder file or a BigVGAN folder")
    voc = load_vocoder(path)
    return voc, f"{type(voc).__name__} ({path.name})"


def _front_for(voc) -> CodecConfig:
    """The codec preset whose mel front end a loaded vocoder reads."""
    n_mels = getattr(voc.cfg, "n_mels", None) or voc.cfg.num_mels  # Vocos / BigVGAN config names
    for cfg in CODEC_PRESETS.values():
        if cfg.sample_rate == voc.sample_rate and cfg.n_mels == n_mels:
            return cfg
    raise FileNotFoundError(f"no codec front end has {n_mels} mels at {voc.sample_rate} Hz "
                            "(the vocoder was trained for another mel layout)")


def _build(args) -> tuple[object, str]:
    from kf_core.codec.griffinlim import GriffinLim
    device = torch.device(args.device)
    if args.vocoder_only:
        cfg = CODEC_PRESETS[args.preset]
        voc, what = _vocoder(args.vocoder or "gl", cfg, args.gl_iters)
        if not isinstance(voc, GriffinLim):
            cfg = _front_for(voc)
        return _VocoderOnly(cfg, voc, device), f"mel -> {what}, {cfg.sample_rate} Hz front end"
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
    voc, _ = _vocoder(args.vocoder, codec.cfg, args.gl_iters)
    if voc is not None:
        codec.vocoder = voc
    if isinstance(codec.vocoder, GriffinLim):
        codec.vocoder.n_iter = args.gl_iters
    return _FullCodec(codec, device), f"{type(codec.vae).__name__} ({path.name}) -> {type(codec.vocoder).__name__}"


def _sources(args, sample_rate: int) -> list[tuple[str, torch.Tensor]]:
    """--audio / --synthetic / --chirp -> [(name, mono wave [1,T] at the codec rate)]."""
    from kf_core.io import read_audio
    items = []
    if args.audio is not None:
        for path in find_audio(args.audio, args.limit):
            wave, _ = read_audio(path, sample_rate=sample_rate, mono=True)          # 1 T
            items.append((str(path.relative_to(args.audio)), wave))
    if args.synthetic:
        items += heldout_synthetic(args.synthetic, args.synthetic_seconds, args.seed, sample_rate)
    if args.chirp:
        items.append(("chirp_100_10k", chirp(sample_rate)))
    if not items:
        raise FileNotFoundError("nothing to score: give --audio DIR, --synthetic N and/or --chirp")
    return items


def _mean(rows: list[dict]) -> dict[str, float | None]:
    out = {}
    for k in METRICS:
        vals = [r[k] for r in rows if r.get(k) is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def main(args) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.audio is None and not args.synthetic and not args.chirp:
            raise FileNotFoundError("nothing to score: give --audio DIR, --synthetic N and/or --chirp")
        runner, what = _build(args)
        cfg = runner.cfg
        items = _sources(args, cfg.sample_rate)
    except FileNotFoundError as e:
        print(f"eval codec: {e}")
        return 2
    print(f"codec: {what}; {len(items)} clip(s) at {cfg.sample_rate} Hz, mono, <= {args.max_seconds:g} s, "
          f"{torch.get_num_threads()} thread(s)")
    rows = []
    for name, wave in items:
        n = min(wave.shape[-1], int(args.max_seconds * cfg.sample_rate)) // runner.step * runner.step
        if n < 2 * runner.step:
            print(f"  skip {name}: {wave.shape[-1]} samples is shorter than {2 * runner.step}")
            continue
        ref = wave[:, :n]
        start = time.perf_counter()
        with torch.inference_mode():
            est = runner.reconstruct(ref)
        seconds = time.perf_counter() - start
        row = codec_metrics(ref[0], est[0], cfg, with_pesq=not args.no_pesq)
        row.update(file=name, seconds=n / cfg.sample_rate, rtf=seconds / (n / cfg.sample_rate))
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
        args.json.write_text(json.dumps({"codec": what, "sample_rate": cfg.sample_rate,
                                         "threads": torch.get_num_threads(), "files": rows, "mean": mean}, indent=2))
        print(f"wrote {args.json}")
    return 0
