"""`python -m kf_core bench watermark`: does the watermark survive, is it inaudible, what does it cost?

Material: `--n` synthetic-world clips (`kf_core.data.synthetic.make_clip`, 3.5-8 s, stereo 44.1 kHz)
are marked; the unmarked set is as many again: half the same clips unmarked, half other sound
(coloured noise, music-like chords, speech-like babble at -35..-15 dBFS), so the null is not trivial.
Every attack of `watermark_attacks.ATTACKS` (and `EXTRA_ATTACKS` with --extra) runs on both sets.

Per attack it prints: TPR at the detector's calibrated threshold (p <= 1e-3, i.e. 0.1 % FPR by
construction), the FPR measured on the unmarked set at that threshold, TPR at the empirical 0.1 %
FPR threshold (the unmarked scores' 99.9th percentile), the median z, payloads read correctly and
the payload bit error rate. Then inaudibility (SNR of the mark, wideband PESQ and mel distance of
marked vs unmarked, with an AAC 128k round trip's mel distance for scale) and cost (ms of
embedding and detection per audio second, stereo, on this CPU: torch threads as given).
"""
from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from kf_core.codec.spectrogram import spectrogram_image
from kf_core.config import CODEC_PRESETS
from kf_core.data.synthetic import make_clip
from kf_core.errors import UserError
from kf_core.eval.benchutil import format_table
from kf_core.eval.metrics import mel_loss, pesq_wb
from kf_core.eval.watermark_attacks import ATTACKS, EXTRA_ATTACKS, codec_roundtrip, music, noise, speech
from kf_core.watermark import DEFAULT_FPR, Payload, detect_watermark, embed_watermark

log = logging.getLogger(__name__)
SR = 44100


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=100, help="marked clips, and as many unmarked (default 100; "
                                                      "the README's numbers use 500)")
    p.add_argument("--attacks", default=None, help="comma list of attack names (default: all)")
    p.add_argument("--extra", action="store_true", help="also the attacks beyond the brief (where it breaks)")
    p.add_argument("--pesq-n", type=int, default=100, help="clips scored with PESQ (it is slow)")
    p.add_argument("--seed", type=int, default=0, help="first clip seed")
    p.add_argument("--threads", type=int, default=2, help="torch threads for the timing (default 2 = this CPU)")
    p.add_argument("--figure", type=Path, default=None,
                   help="also write a PNG: unmarked / marked / the mark alone, one spectrogram scale (docs/watermark.png)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes running the attacks (default: 2, or 1 on a 1-core machine)")


def _clip(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    duration = round(float(rng.uniform(3.5, 8.0)) * 12) / 12
    return torch.from_numpy(make_clip(seed, duration=duration, fps=12.0, size=64).audio)       # 2 T


def _other(seed: int) -> torch.Tensor:
    """Non-Foley material for the unmarked set: noise, music or speech, stereo, -35..-15 dBFS."""
    rng = np.random.default_rng(10_000_000 + seed)
    n = int(rng.uniform(3.5, 8.0) * SR)
    make = (noise, music, speech)[seed % 3]
    level = 10 ** (rng.uniform(-35, -15) / 20) / 0.1
    left, right = make(rng, n, SR), make(rng, n, SR)
    return torch.from_numpy(np.stack([left, 0.5 * (left + right)]) * level).float()


def _payload(i: int) -> Payload:
    return Payload.for_generation("kf-tiny", 7919 * i)


def _material(n: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """-> hosts, their marked versions, and the unmarked set (half hosts, half other material)."""
    hosts = [_clip(seed + i) for i in range(n)]
    marked = [embed_watermark(h, SR, _payload(i)) for i, h in enumerate(hosts)]
    unmarked = [hosts[i] if i % 2 == 0 else _other(seed + i) for i in range(n)]
    return hosts, marked, unmarked


_SETS: dict[str, list[torch.Tensor]] = {}   # the material, shared with forked workers


def _trial(task: tuple[str, str, int, int]) -> tuple[float, bool, bool, float]:
    """(attack, "marked"/"unmarked", index, seed) -> (score, present, payload right, payload bit error rate)."""
    name, which, i, seed = task
    attack = {**ATTACKS, **EXTRA_ATTACKS}[name]
    x, sr = attack(_SETS[which][i], SR, np.random.default_rng([seed, i, which == "marked"]))
    d = detect_watermark(x, sr)
    return d.score, d.present, d.payload == _payload(i), float(np.mean(d.bits != _payload(i).bits()))


def _attack_row(name: str, trials: dict) -> list[object]:
    marked, unmarked = trials["marked"], trials["unmarked"]
    z_m = np.array([t[0] for t in marked])
    z_u = np.array([t[0] for t in unmarked])
    emp = float(np.quantile(z_u, 1 - DEFAULT_FPR, method="higher"))
    return [name, float(np.mean([t[1] for t in marked])), float(np.mean([t[1] for t in unmarked])),
            float(np.mean(z_m > emp)), float(np.median(z_m)), float(z_u.max()),
            float(np.mean([t[2] for t in marked])), float(np.mean([t[3] for t in marked]))]


def _run_attacks(attacks: dict, n: int, seed: int, workers: int):
    """Every attack on every clip of both sets, in `workers` forked processes -> table rows, in order."""
    tasks = [(a, which, i, seed) for a in attacks for which in ("marked", "unmarked") for i in range(n)]
    fork = "fork" in multiprocessing.get_all_start_methods()
    if workers > 1 and fork:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(_trial, tasks, chunksize=4)
    else:
        results = [_trial(t) for t in tasks]
    by = {}
    for (a, which, _, _), r in zip(tasks, results):
        by.setdefault(a, {"marked": [], "unmarked": []})[which].append(r)
    return [_attack_row(a, by[a]) for a in attacks]


def _quality(hosts, marked, pesq_n: int) -> list[list[object]]:
    cfg = CODEC_PRESETS["44k"]
    snr = [10 * torch.log10(h.square().sum() / (m - h).square().sum().clamp_min(1e-20)).item()
           for h, m in zip(hosts, marked)]
    mel = [mel_loss(h, m, cfg).mean().item() for h, m in zip(hosts, marked)]
    aac = []
    for h in hosts[:20]:
        y, _ = codec_roundtrip(h, SR, "aac", 128)
        y = y[:, 1024:1024 + h.shape[-1]]                     # FFmpeg's AAC priming delay
        y = torch.nn.functional.pad(y, (0, h.shape[-1] - y.shape[-1]))
        aac.append(mel_loss(h[:, :-4096], y[:, :-4096], cfg).mean().item())
    pesq = []
    for h, m in zip(hosts[:pesq_n], marked[:pesq_n]):
        try:
            pesq.append(pesq_wb(h.mean(0), m.mean(0), SR))
        except ValueError:  # too little sound for P.862 (a near-silent clip): reported as skipped
            pass
    p5 = float(np.percentile(pesq, 5)) if pesq else float("nan")
    return [["SNR of the mark (dB, median / 5th pct)", f"{statistics.median(snr):.1f} / {np.percentile(snr, 5):.1f}"],
            [f"PESQ wb marked vs unmarked (mean / median / 5th pct, {len(pesq)} clips)",
             f"{np.mean(pesq):.3f} / {statistics.median(pesq):.3f} / {p5:.3f}" if pesq else "n/a"],
            ["mel distance marked vs unmarked (mean |d log-mel|)", f"{np.mean(mel):.4f}"],
            ["  for scale: an AAC 128k round trip's", f"{np.mean(aac):.4f}"]]


def _speed(threads: int) -> list[list[object]]:
    """ms per audio second of embedding and detection on 10 s of stereo, wall and CPU time, median of
    9: at the mark's own 44.1 kHz, and embedding at kf-tiny's 16 kHz (resampled to 44.1 kHz and back)."""
    wave = 0.1 * torch.randn(2, 10 * SR, generator=torch.Generator().manual_seed(0))
    wave16 = 0.1 * torch.randn(2, 10 * 16000, generator=torch.Generator().manual_seed(0))
    pay = Payload(1, 2)
    rows = []
    for n in sorted({1, threads}):
        torch.set_num_threads(n)
        for what, fn in (("embed", lambda: embed_watermark(wave, SR, pay)),
                         ("embed at 16 kHz", lambda: embed_watermark(wave16, 16000, pay)),
                         ("detect", lambda: detect_watermark(wave, SR))):
            fn()
            wall, cpu = [], []
            for _ in range(9):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            rows.append([f"{what} ms per audio second, {n} thread{'s' * (n > 1)} (wall / CPU)",
                         f"{statistics.median(wall) * 100:.2f} / {statistics.median(cpu) * 100:.2f}"])
    torch.set_num_threads(1)
    return rows


def write_figure(path: Path, seed: int = 1007, top_db: float = 70.0) -> Path:
    """A clip's mono mix unmarked, marked, and the mark alone (marked - unmarked) as three panels
    on one dB scale (the host's loudest point) -> the PNG written (never over an existing file)."""
    from torchvision.io import write_png  # torchvision is a runtime dependency; only this figure needs it
    from kf_core.io import unique_path
    host = torch.from_numpy(make_clip(seed, duration=3.0, fps=12.0, size=64, classes=["strike", "rain"]).audio)
    host = host.mean(0)
    mark = embed_watermark(host, SR, _payload(0)) - host
    img = spectrogram_image(torch.stack([host, host + mark, mark])[None], SR, top_db)[0]      # H W 3
    out = unique_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = (img * 31).round() * (255 / 31)                      # 32 levels per colour: a small PNG, same look
    write_png(img.round().to(torch.uint8).permute(2, 0, 1).contiguous(), str(out), compression_level=9)
    return out


def main(args: argparse.Namespace) -> int:
    if args.n < 10:
        raise UserError(f"--n must be at least 10 clips, got {args.n}")
    attacks = {**ATTACKS, **(EXTRA_ATTACKS if args.extra else {})}
    if args.attacks:
        wanted = [a.strip() for a in args.attacks.split(",")]
        unknown = [a for a in wanted if a not in {**ATTACKS, **EXTRA_ATTACKS}]
        if unknown:
            raise UserError(f"unknown attacks {unknown}; choose from {sorted({**ATTACKS, **EXTRA_ATTACKS})}")
        attacks = {a: {**ATTACKS, **EXTRA_ATTACKS}[a] for a in wanted}
    torch.set_num_threads(1)
    if args.figure is not None:
        print(f"figure: {write_figure(args.figure)}")
    t0 = time.perf_counter()
    hosts, marked, unmarked = _material(args.n, args.seed)
    print(f"{args.n} marked synthetic clips ({sum(h.shape[-1] for h in hosts) / SR / 60:.1f} min) and "
          f"{len(unmarked)} unmarked (half the same clips, half noise/music/speech); "
          f"made in {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}")
    _SETS.update(marked=marked, unmarked=unmarked)
    t1 = time.perf_counter()
    rows = _run_attacks(attacks, args.n, args.seed, args.workers)
    print(f"{len(attacks)} attacks x {2 * args.n} clips in {time.perf_counter() - t1:.0f} s "
          f"({args.workers} workers)")
    print()
    print(format_table(["attack", "TPR@p<=1e-3", "FPR measured", "TPR@emp.0.1%", "median z", "max null z",
                        "payload ok", "bit err"], rows, floatfmt=".3f"))
    print()
    print(format_table(["inaudibility and cost", "value"], _quality(hosts, marked, args.pesq_n) + _speed(args.threads)))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f}")
    return 0
