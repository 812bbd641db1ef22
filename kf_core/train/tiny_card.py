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


_SYNTH_COLS = [("onset_f1_50ms", "Onset F1@50ms", 3), ("onset_err_ms", "onset err ms", 1),
               ("desync_s", "DeSync s", 3), ("class_acc", "class acc", 2), ("stereo_corr", "stereo corr", 2),
               ("frechet", "FD", 2), ("rtf", "RTF", 3)]


def _fmt(v, digits: int) -> str:
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def _synthetic_table(evals: list[tuple[str, dict]]) -> list[str]:
    """[(model label, eval_synthetic json)] -> one table: every row of every model (labelled)."""
    lines = ["| model | row | " + " | ".join(c[1] for c in _SYNTH_COLS) + " |", "|---" * (len(_SYNTH_COLS) + 2) + "|"]
    for label, ev in evals:
        for name, r in ev["rows"].items():
            if label != evals[0][0] and name in ("ground truth", "silence", "shuffled"):
                continue  # the baselines are the same clips for every model
            vals = [_fmt(r.get(key), digits) for key, _, digits in _SYNTH_COLS]
            lines.append(f"| {label} | {name} | " + " | ".join(vals) + " |")
    return lines


def _vae_shape(preset: str) -> str:
    """MEL_VAE_PRESETS key -> "`tiny-v2`, width 64": the card's words for the recipe's Mel-VAE shape."""
    from ..codec.mel_vae import MEL_VAE_PRESETS
    cfg = MEL_VAE_PRESETS.get(preset)
    return f"`{preset}`, width {cfg.width}" if cfg else f"`{preset}`"


def _dit_params(folder: Path) -> str:
    """'3.3 M parameters' of the network in OUT/dit.safetensors (or 'parameters not counted' without it)."""
    path = folder / "dit.safetensors"
    if not path.is_file():
        return "parameters not counted"
    from ..loading.dit import load_dit
    model, _ = load_dit(path)
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"


_SPLITS = (("heldout-look", "held-out seeds and held-out looks (backgrounds, floors, colours, camera never seen "
                            "in training)"),
           ("heldout", "held-out seeds, training looks"),
           ("classic", "held-out seeds in v1's plain world (solid backgrounds)"))
_CODEC_ROWS = (("eval_codec.json", "v2 codec: Mel-VAE → neural vocoder"),
               ("eval_codec_vae_gl.json", "v2 Mel-VAE → Griffin-Lim"),
               ("eval_codec_vocoder.json", "v2 vocoder alone (true mel → vocoder)"),
               ("eval_codec_gl.json", "Griffin-Lim alone (true mel → GL bound)"),
               ("eval_v1_codec.json", "v1 codec: Mel-VAE → Griffin-Lim"))


def _evaluation(folder: Path) -> list[str]:
    lines = ["## Evaluation", "",
             "Every number below is on clips training never saw. v1 is the kf-tiny shipped before this one "
             "(its evaluation files are the `eval_v1_*` beside these).", ""]
    found = False
    for split, what in _SPLITS:
        evals = [(label, ev) for label, ev in (("v2", _load(folder / f"eval_synthetic_{split}.json")),
                                               ("v1", _load(folder / f"eval_v1_synthetic_{split}.json")))
                 if ev is not None]
        if not evals:
            continue
        found = True
        ev = evals[0][1]
        lines += [f"`python -m kf_core eval synthetic --split {split} --n {ev['n']} --seed {ev['seed']} --duration "
                  f"{ev['duration']:g}` — {what}; {ev['duration']:g} s single-source clips, 20 Euler steps, CFG 4.5 "
                  f"(`eval_synthetic_{split}.json`):", ""] + _synthetic_table(evals) + [""]
    if found:
        lines += ["Targets: onset F1@50 ms ≥ 0.8, DeSync ≤ 0.1 s, class accuracy ≥ 0.9 with video and from text "
                  "alone, stereo-direction correlation ≥ 0.8. \"contradicting prompt\" rows give the video and a "
                  "caption of another class: their class accuracy is against the prompt's class.", ""]
    onsets = _load(folder / "eval_onsets.json")
    if onsets is not None:
        lines += ["Impact hits (`tests/test_kf_tiny.py` clips: held-out looks, 272–512 px, 16–30 fps and VFR): "
                  + "; ".join(f"{k} {v['hits']}/{v['impacts']} within 100 ms (shifted-time control "
                              f"{v['control_hits']}/{v['impacts']})" for k, v in onsets.items()) + ".", ""]
    codec = [(name, _load(folder / f)) for f, name in _CODEC_ROWS]
    codec = [(n, c) for n, c in codec if c is not None]
    if codec:
        keys = [k for k in ("pesq", "si_sdr", "sdr", "lsd", "mcd", "mel_loss", "stft_loss", "rtf")
                if any(c["mean"].get(k) is not None for _, c in codec)]
        lines += ["Codec reconstruction (`python -m kf_core eval codec`, the paper's Table 3 metrics, mean over "
                  f"{len(codec[0][1]['files'])} held-out synthetic clips; targets PESQ ≥ 2.5, MCD ≤ 8):", "",
                  "| codec | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, c in codec:
            lines.append(f"| {name} | " + " | ".join(_fmt(c["mean"].get(k), 3) for k in keys) + " |")
        lines += ["", "Higher is better for PESQ, SI-SDR, SDR; lower for LSD, MCD, mel and STFT loss.", ""]
    for label, f in (("v2", "eval_rtf.json"), ("v1", "eval_v1_rtf.json")):
        rtf = _load(folder / f)
        if rtf is not None:
            lines += [f"End-to-end real-time factor ({label}): {rtf['rtf']:.3f} for a {rtf['duration']:g} s clip at "
                      f"{rtf['steps']} steps ({rtf['seconds']:.2f} s, {rtf['threads']} threads, all stages incl. "
                      f"encoders; {rtf.get('note', '')}). Target ≤ 0.5.", ""]
    if len(lines) == 4:
        lines += ["No evaluation results are in this folder yet.", ""]
    return lines


def _vocoder_line(run: dict, vocoder: str) -> str:
    """The card's vocoder line: what it is, its recipe, and its held-out numbers against Griffin-Lim."""
    recipe, held = run["recipe"], run.get("vocoder_heldout")
    line = (f"`{vocoder}`, Vocos-style iSTFT head ({_fmt(run.get('vocoder_params_m'), 2)} M parameters, every "
            f"layer at the mel frame rate), {recipe.get('vocoder_steps')} steps of batch {recipe.get('vocoder_batch')} "
            f"(mel L1 + multi-resolution STFT losses, {_fmt(100 * run.get('vocoder_vae_share', float('nan')), 0)} % "
            "of each batch from the Mel-VAE's mels; no GAN)")
    if not held:
        return line + "."

    def cell(name: str) -> str:
        r = held.get(name) or {}
        return f"mel L1 {_fmt(r.get('mel_loss'), 3)}, MCD {_fmt(r.get('mcd'), 2)}, PESQ {_fmt(r.get('pesq'), 2)}"
    return (line + f". Held-out ({held['clips']} clips of {held['seconds']:g} s): true mel → vocoder "
            f"{cell('vocoder')} vs → Griffin-Lim {cell('griffin_lim')}; Mel-VAE → vocoder {cell('vae_vocoder')} vs "
            f"→ Griffin-Lim {cell('vae_griffin_lim')}; real-time factor {_fmt((held.get('vocoder') or {}).get('rtf'), 3)} "
            f"vs {_fmt((held.get('griffin_lim') or {}).get('rtf'), 3)} on {held.get('threads')} thread(s)."
            + (" It does not beat Griffin-Lim on all three, so the manifest names no vocoder and Griffin-Lim "
               "plays the mels (the file stays beside them)." if run.get("vocoder_shipped") is False else ""))


def write_model_card(folder: Path) -> Path:
    """Folder of a trained kf-tiny -> MODEL_CARD.md (overwritten) built from the files in it."""
    folder = Path(folder)
    run = _load(folder / "training.json")
    if run is None:
        raise FileNotFoundError(f"{folder / 'training.json'} is missing: the card describes a finished "
                                "`python -m kf_core train-tiny` run; run it first")
    recipe = run["recipe"]
    sizes = {p.name: p.stat().st_size for p in sorted(folder.glob("*.safetensors"))}
    sync, sem = run.get("sync_heldout_look", {}), run.get("semantic_heldout_look", {})
    manifest = _load(folder / "manifest.json") or {}
    vocoder = (manifest.get("components") or {}).get("vocoder")
    lines = [
        "# kf-tiny", "",
        "The default model bundled with the node pack: a CPU-sized Kling-Foley (MM-DiT flow model, Mel-VAE, "
        "Mono2Stereo, vocoder) trained only on the procedural synthetic audio-visual world "
        "(`kf_core.data.synthetic`), whose look (background, floor, colours, light, camera, noise, compression, "
        "size, frame rate) is drawn at random and independently of its sounds, with whole look families held "
        "out. It knows nine sound classes (ball, strike, bell, footsteps, vehicle, rain, bird, light, ambience) "
        "and is meant for trying the nodes and hearing sound follow picture — not for real-world videos.", "",
        "## How it was made", "",
        f"Command (the only one): `{run.get('command') or 'python -m kf_core train-tiny --out OUT'}`", "",
        f"- Wall time: {run['total_s'] / 60:.1f} min in total — "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in run["timings_s"].items()),
        f"- Machine: {run.get('machine_note') or run['machine']}, torch {run['torch']}, {run['threads']} threads; "
        f"stages on {run.get('device', 'cpu')}",
        f"- Data: synthetic training seeds and training looks only (held-out seeds are offset by 1e9 and draw "
        f"held-out look families). DiT: {recipe['dit_clips']} clips of 2–10 s (single / multi-source / temporal "
        "concatenation layouts, templated captions).",
        f"- Text and image encoders: tiny T5 (byte tokenizer, d 128) and tiny CLIP ViT (64 px, 8 fps), trained "
        f"together CLIP-style on {recipe.get('semantic_clips')} (frame, caption) pairs for "
        f"{recipe.get('semantic_steps')} steps (InfoNCE + a class head on each tower), then frozen. Held-out-look "
        f"class accuracy of their heads: text {_fmt(sem.get('text_class_acc'), 2)}, image "
        f"{_fmt(sem.get('image_class_acc'), 2)}.",
        f"- Sync encoder: tiny Synchformer reading squashed 64-px frames as motion (blurred luma and its first and second "
        f"temporal differences, `encoders.synchformer.motion_frames`), 8 tokens per 16-frame segment, trained "
        f"by its own objective — per-token onset presence and the pan of that moment's sound, with random "
        f"flips and colour jitter — {recipe.get('sync_steps')} steps of {recipe.get('sync_batch')} segments from "
        f"{recipe.get('sync_clips')} clips of 2.56 s, then frozen. Held-out-look onset probe AUC "
        f"{_fmt(sync.get('auc'), 3)}, pan correlation {_fmt(sync.get('pan_corr'), 2)}"
        + (f"; the same recipe on RGB input: AUC {_fmt(run['sync_rgb_auc'], 3)}" if "sync_rgb_auc" in run else "")
        + ".",
        f"- Mel-VAE ({_vae_shape(recipe.get('vae_preset', 'tiny'))}, C 16 at 43 Hz): Alg. 2, "
        f"{recipe['vae_steps']} steps, batch {recipe['vae_batch']}, {recipe['codec_clips']} clips of "
        f"{recipe['codec_clip_s']:g} s. "
        f"Mel L1: {run.get('vae_l1_db_train', float('nan')):.2f} dB on its training clips"
        + (f", {_fmt(run['vocoder_heldout']['vae_mel_l1_db'], 2)} dB on the held-out ones"
           if "vae_mel_l1_db" in (run.get("vocoder_heldout") or {}) else "") + ".",
        "- Vocoder: " + (_vocoder_line(run, vocoder or "vocoder.safetensors")
                         if vocoder or run.get("vocoder_heldout") else "Griffin-Lim"),
        f"- Mono2Stereo: one pan p per mel bin and frame (L = 2p·M, R = 2(1 − p)·M in linear mel: the paper's "
        f"two ratios L/M and R/M with L/M + R/M = 2 built in, so energy is preserved by construction), reading "
        f"the sync tokens at each mel frame's instant; {recipe['m2s_steps']} steps, batch {recipe['m2s_batch']}.",
        f"- DiT (`PRESETS['kf-tiny']`, {_dit_params(folder)}): flow matching (Alg. 1), {recipe['dit_steps']} steps, "
        f"batch {recipe['dit_batch']}, AdamW lr {recipe['dit_lr']:g} with eq. 8 warm-up/decay, EMA "
        f"{recipe['ema_decay']}, video/text dropped with p = {recipe['p_drop_video']}/{recipe['p_drop_text']}, "
        "padding masked in every stream; EMA weights stored in float16 with the latent statistics.", "",
        "Files: " + ", ".join(f"`{k}` {v / 1e6:.2f} MB" for k, v in sizes.items())
        + f" — {sum(sizes.values()) / 1e6:.1f} MB in all.", "",
        "## Training curves", "",
    ]
    for name in ("semantic", "synchformer", "vae", "vocoder", "mono2stereo", "dit"):
        path = folder / "curves" / f"{name}.csv"
        if path.is_file():
            lines.append(f"- {name} (`curves/{name}.csv`): {_summary_line(read_curve(path))}")
    lines += [""] + _evaluation(folder)
    notes = run.get("notes") or []
    if notes:
        lines += ["## Notes on this build", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Limits", "",
              "Synthetic sounds only: the encoders learned this world's objects and events, so conditioning beyond "
              "the synthetic world means little; trained on 2–10 s clips (longer videos are generated in windows "
              "placed by the duration embeddings).", ""]
    path = folder / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
