"""kf-tiny's model card and training curves, written from what the run and the evaluations recorded.

`write_model_card(folder)` reads OUT/training.json (the run), OUT/curves/*.csv (losses) and, when
present, OUT/eval_synthetic.json / OUT/eval_codec.json / OUT/eval_codec_gl.json / OUT/eval_rtf.json
(written by the eval commands), so every number in the card comes from a file beside it.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_curve", "read_curve", "write_model_card"]

_SPARK = "▁▂▃▄▅▆▇█"


def write_curve(path: Path, rows: Sequence[dict]) -> Path:
    """Logged rows [{step, loss, ...}] -> CSV with the union of their columns."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def read_curve(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def _summary_line(rows: list[dict[str, float]], key: str = "loss", points: int = 40) -> str:
    """Curve -> 'first → last, min' plus a sparkline of `points` bins (mean per bin)."""
    vals = [r[key] for r in rows if key in r]
    if not vals:
        return "(no values)"
    points = min(points, len(vals))
    bins = [vals[i * len(vals) // points:(i + 1) * len(vals) // points] for i in range(points)]
    means = [sum(b) / len(b) for b in bins if b]
    lo, hi = min(means), max(means)
    spark = "".join(_SPARK[int((m - lo) / (hi - lo + 1e-12) * (len(_SPARK) - 1))] for m in means)
    return (f"`{spark}` {key} {vals[0]:.4g} → {vals[-1]:.4g} (min {min(vals):.4g}) over "
            f"{int(rows[-1]['step'])} steps")


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _synthetic_table(ev: dict) -> list[str]:
    cols = [("onset_f1_50ms", "Onset F1@50ms", 3), ("onset_err_ms", "onset err ms", 1), ("desync_s", "DeSync s", 3),
            ("class_acc", "class acc", 2), ("stereo_corr", "stereo corr", 2), ("frechet", "FD", 2), ("rtf", "RTF", 3)]
    lines = ["| row | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in ev["rows"].items():
        vals = []
        for key, _, digits in cols:
            v = r.get(key)
            vals.append("n/a" if v is None or v != v else f"{v:.{digits}f}")
        lines.append(f"| {name} | " + " | ".join(vals) + " |")
    return lines


def _overrides(recipe: dict) -> str:
    from .tiny import RECIPES
    base = RECIPES.get(recipe["name"])
    return f" --dit-steps {recipe['dit_steps']}" if base and base.dit_steps != recipe["dit_steps"] else ""


def _dit_params(folder: Path) -> str:
    """'3.3 M parameters' of the network in OUT/dit.safetensors (or 'parameters not counted' without it)."""
    path = folder / "dit.safetensors"
    if not path.is_file():
        return "parameters not counted"
    from ..loading.dit import load_dit
    model, _ = load_dit(path)
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"


def write_model_card(folder: Path) -> Path:
    """Folder of a trained kf-tiny -> MODEL_CARD.md (overwritten) built from the files in it."""
    folder = Path(folder)
    run = _load(folder / "training.json")
    if run is None:
        raise FileNotFoundError(f"{folder / 'training.json'} is missing: the card describes a finished "
                                "`python -m kf_core train-tiny` run; run it first")
    recipe = run["recipe"]
    sizes = {p.name: p.stat().st_size for p in sorted(folder.glob("*.safetensors"))}
    lines = [
        "# kf-tiny", "",
        "The default model bundled with the node pack: a CPU-sized Kling-Foley (MM-DiT flow model, Mel-VAE, "
        "Mono2Stereo, Griffin-Lim) trained only on the procedural synthetic audio-visual world "
        "(`kf_core.data.synthetic`). It knows nine sound classes (ball, strike, bell, footsteps, vehicle, rain, "
        "bird, light, ambience) and is meant for trying the nodes and checking that sound follows picture — "
        "not for real-world videos.", "",
        "## How it was made", "",
        f"Command (the only one): `python -m kf_core train-tiny --out kf_core/assets/kf-tiny --recipe "
        f"{recipe['name']} --seed {run['seed']} --workers {run['workers']}{_overrides(recipe)}`", "",
        f"- Wall time: {run['total_s'] / 60:.1f} min in total — "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in run["timings_s"].items()),
        f"- Machine: {run.get('machine_note') or run['machine']}, torch {run['torch']}, {run['threads']} threads",
        f"- Data: synthetic training seeds only (held-out evaluation seeds are offset by 1e9). Codec: "
        f"{recipe['codec_clips']} clips of {recipe['codec_clip_s']:g} s (seed range offset 5e8); DiT: "
        f"{recipe['dit_clips']} clips of 2–10 s, 80 % of them 2–4 s (single / multi-source / temporal "
        "concatenation layouts, templated captions).",
        "- Text and image encoders (frozen, never trained): tiny T5 (byte tokenizer, d 128) and tiny CLIP ViT "
        "(64 px, 8 fps) with deterministic seeded weights.",
        f"- Sync encoder: tiny Synchformer (64 px, 25 fps, 8 tokens per 16-frame segment), trained by its own "
        f"objective — per-token onset presence, {recipe.get('sync_steps', 0)} steps of {recipe.get('sync_batch', 0)} "
        f"segments from {recipe.get('sync_clips', 0)} clips of 2.56 s — then frozen.",
        f"- Mel-VAE (`MEL_VAE_PRESETS['tiny']`, C 16 at 43 Hz): Alg. 2 stage 1 (MSE) then stage 2 (KL ramp), "
        f"{recipe['vae_steps']} steps, batch {recipe['vae_batch']} × 0.74 s; GAN stages not run. "
        f"Training-set mel L1: {run.get('vae_l1_db_train', float('nan')):.2f} dB.",
        f"- Mono2Stereo (visual-conditioned pan, hidden 64): {recipe['m2s_steps']} steps, batch {recipe['m2s_batch']}.",
        f"- DiT (`PRESETS['kf-tiny']`: point-wise block MLPs, {_dit_params(folder)}): "
        f"flow matching (Alg. 1), {recipe['dit_steps']} steps, "
        f"batch {recipe['dit_batch']}, AdamW lr {recipe['dit_lr']:g} with eq. 8 warm-up/decay, EMA "
        f"{recipe['ema_decay']}, video/text dropped with p = {recipe['p_drop_video']}/{recipe['p_drop_text']}; "
        "EMA weights stored in float16 with the latent statistics.",
        "- Vocoder: Griffin-Lim (32 fast iterations); no neural vocoder was trained.", "",
        "Files: " + ", ".join(f"`{k}` {v / 1e6:.2f} MB" for k, v in sizes.items())
        + f" — {sum(sizes.values()) / 1e6:.1f} MB in all.", "",
        "## Training curves", "",
    ]
    for name in ("vae", "mono2stereo", "synchformer", "dit"):
        path = folder / "curves" / f"{name}.csv"
        if path.is_file():
            lines.append(f"- {name} (`curves/{name}.csv`): {_summary_line(read_curve(path))}")
    lines += ["", "## Evaluation", ""]
    ev = _load(folder / "eval_synthetic.json")
    if ev is not None:
        lines += [f"`python -m kf_core eval synthetic --n {ev['n']} --seed {ev['seed']} --duration "
                  f"{ev['duration']:g}` (held-out seeds, {ev['duration']:g} s single-source clips, 20 Euler steps, "
                  "CFG 4.5; `eval_synthetic.json`):", ""] + _synthetic_table(ev)
        lines += ["", "Targets: onset F1@50 ms ≥ 0.8, DeSync ≤ 0.1 s, class accuracy ≥ 0.9 (video and text only), "
                  "stereo correlation ≥ 0.8.", ""]
    codec_rows = [(name, _load(folder / f)) for name, f in (("kf-tiny codec (Mel-VAE → Griffin-Lim)", "eval_codec.json"),
                                                            ("Griffin-Lim alone (mel → GL bound)", "eval_codec_gl.json"))]
    codec_rows = [(n, c) for n, c in codec_rows if c is not None]
    if codec_rows:
        keys = [k for k in ("pesq", "si_sdr", "sdr", "lsd", "mcd", "mel_loss", "stft_loss", "rtf")
                if any(c["mean"].get(k) is not None for _, c in codec_rows)]
        lines += ["Codec reconstruction (`python -m kf_core eval codec`, Table 3 metrics, mean over "
                  f"{len(codec_rows[0][1]['files'])} held-out synthetic clips; `eval_codec*.json`):", "",
                  "| codec | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, c in codec_rows:
            vals = [c["mean"].get(k) for k in keys]
            lines.append(f"| {name} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals) + " |")
        lines += ["", "Higher is better for PESQ, SI-SDR, SDR; lower for LSD, MCD, mel and STFT loss.", ""]
    rtf = _load(folder / "eval_rtf.json")
    if rtf is not None:
        lines += [f"End-to-end real-time factor: {rtf['rtf']:.3f} for a {rtf['duration']:g} s clip at "
                  f"{rtf['steps']} steps ({rtf['seconds']:.2f} s, {rtf['threads']} threads, all stages incl. "
                  f"encoders; {rtf.get('note', '')}).", ""]
    notes = run.get("notes") or []
    if notes:
        lines += ["## Notes on this build", ""] + [f"- {n}" for n in notes] + [""]
    if ev is None and not codec_rows:
        lines += ["No evaluation results are in this folder yet.", ""]
    lines += ["## Limits", "",
              "Synthetic sounds only; the T5 and CLIP encoders are random (untrained) and the Synchformer only "
              "learned this world's impacts, so conditioning beyond the synthetic world is meaningless; "
              "Griffin-Lim phase artefacts; trained on 2–10 s clips (the duration embedding accepts up to 30 s "
              "and longer videos are generated in windows, but longer clips were never seen).", ""]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
