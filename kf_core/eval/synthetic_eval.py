"""`python -m kf_core eval synthetic`: does the sound follow the picture, on held-out synthetic clips?

Splits (`--split`; every split uses held-out seeds, never seen in training):
- heldout (default): the world's training look families (what kf-tiny v2 is trained on),
- heldout-look: held-out look families too (backgrounds, floor, colours, camera never trained on),
- classic: the plain look kf-tiny v1 was trained and first measured on (the clips this command
  scored before looks existed, bit for bit).

Rows (each scored against the clips' ground-truth events):
- ground truth: the generator's own audio (the upper bound),
- silence: zeros (what "nothing" scores),
- shuffled: the audio of another clip (right kind of sound, wrong timing and place),
- generated (video) / generated (text only): a pipeline's output, only when `kf_core.pipeline`
  and a trained model load; otherwise the reason is printed and no numbers are made up.
- generated (contradicting prompt): the video with the caption of a clip of another class; its
  class accuracy is scored against the PROMPT's class (does a prompt change what is heard?), and
  its timing metrics against the video's events.

Metrics: onset F1 at 50 ms (micro-averaged) and mean |onset error| of matched onsets; a
DeSync-like mean |best lag| over 4.8 s windows (with the share of windows where it is defined);
event-class accuracy of a spectral classifier fitted on ground-truth audio of training seeds;
stereo direction (correlation of ILD with on-screen x); Fréchet distance of window features to a
separate ground-truth reference set; real-time factor of producing the audio.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from kf_core.data.dataset import split_seed
from kf_core.data.synthetic import CLASSES, Clip, make_clip
from kf_core.eval import sync_metrics as sm
from kf_core.eval.classifier import SpectralClassifier, window_features
from kf_core.loading.state import CheckpointError

log = logging.getLogger(__name__)
SR = 44100
SPLITS = {"heldout": "train", "heldout-look": "heldout", "classic": "classic"}  # split -> make_clip looks


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=36, help="held-out clips (classes cycle, so 36 = 4 per class)")
    p.add_argument("--seed", type=int, default=0, help="base seed; held-out seeds are disjoint from training ones")
    p.add_argument("--split", choices=SPLITS, default="heldout",
                   help="held-out seeds in the training looks (heldout, the default), in held-out look "
                        "families (heldout-look), or in kf-tiny v1's plain look (classic: this command's "
                        "clips before looks existed)")
    p.add_argument("--duration", type=float, default=8.0, help="clip length in seconds")
    p.add_argument("--train-per-class", type=int, default=12, help="ground-truth clips per class to fit the classifier")
    p.add_argument("--classifier", type=Path, default=None, help="load this .npz classifier (fit and save it if missing)")
    p.add_argument("--model", type=str, default=None, help="model folder/name for kf_core.load_pipeline (None = kf-tiny)")
    p.add_argument("--steps", type=int, default=20, help="sampling steps for generated rows")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")


def heldout_clips(n: int, seed: int, duration: float, offset: int = 0,
                  split: str = "heldout") -> tuple[list[Clip], float]:
    """n single-source clips on held-out seeds (classes cycle) in the looks of `split` (`SPLITS`)
    -> (clips, seconds spent generating)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    start = time.perf_counter()
    clips = [make_clip(split_seed(offset + i, seed, "heldout"), duration=duration, classes=[CLASSES[i % len(CLASSES)]],
                       looks=SPLITS[split]) for i in range(n)]
    return clips, time.perf_counter() - start


def fit_classifier(per_class: int, seed: int) -> SpectralClassifier:
    """Fit the event-class classifier on ground-truth audio of training seeds (4 s, tiny frames)."""
    clips = [make_clip(split_seed(i, seed, "train"), duration=4.0, fps=12, size=64, classes=[CLASSES[i % len(CLASSES)]])
             for i in range(per_class * len(CLASSES))]
    return SpectralClassifier.fit([c.audio for c in clips], [c.labels[0] for c in clips], SR)


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """[C, M] -> stereo [2, n]: mono is duplicated, longer is cut, shorter is zero-padded."""
    audio = np.asarray(audio, np.float32)
    audio = np.repeat(audio[:1], 2, axis=0) if audio.shape[0] == 1 else audio[:2]
    out = np.zeros((2, n), np.float32)
    out[:, : min(n, audio.shape[1])] = audio[:, :n]
    return out


def score(clips: list[Clip], audios: list[np.ndarray], reference: np.ndarray, clf: SpectralClassifier,
          seconds: float, classes: list[str] | None = None) -> dict:
    """Clips + the audio to judge for each -> metric dict (see the module docstring); `classes` are
    the classes the audio should have (default: each clip's own)."""
    tp = fp = fn = 0
    errors, lags, pairs = [], [], []
    for clip, audio in zip(clips, audios):
        est = sm.detect_onsets(audio, SR)
        s = sm.onset_scores(clip.onset_times, est, 0.05, clip.texture_spans)
        tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
        errors += list(s["abs_errors"])
        if clip.onset_times.size:
            lags += list(sm.desync_offsets(clip.onset_times, audio, SR, clip.duration))
        pairs.append(sm.stereo_pairs(clip.events, audio, SR))
    lags = np.asarray(lags)
    defined = lags[~np.isnan(lags)]
    predicted = clf.predict(audios)
    feats = np.concatenate([window_features(a, SR) for a in audios])
    return {
        "onset_f1_50ms": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
        "onset_err_ms": float(np.mean(errors) * 1000) if errors else float("nan"),
        "desync_s": float(np.mean(np.abs(defined))) if defined.size else float("nan"),
        "desync_defined": float(defined.size / lags.size) if lags.size else float("nan"),
        "class_acc": float(np.mean([p == k for p, k in zip(predicted, classes or [c.labels[0] for c in clips])])),
        "stereo_corr": sm.stereo_correlation(np.concatenate(pairs)),
        "frechet": sm.frechet_distance(feats, reference),
        "rtf": seconds / sum(c.duration for c in clips),
    }


def _generated_rows(clips: list[Clip], model: str | None, steps: int) -> tuple[dict[str, tuple], str | None]:
    """-> ({row name: (audios, seconds)}, None) or ({}, why the generated rows are skipped)."""
    try:
        from kf_core.pipeline import load_pipeline
        pipe = load_pipeline(model)
    except ImportError as err:
        return {}, f"kf_core.pipeline is not available ({err})"
    except (FileNotFoundError, OSError, CheckpointError, ValueError) as err:
        return {}, f"no trained model could be loaded for {model or 'kf-tiny'!r}: {err}"
    from scipy.signal import resample_poly

    from kf_core.data.example_video import write_frames_mp4

    rows: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, with_video, prompts in (("generated (video)", True, [c.caption for c in clips]),
                                          ("generated (text only)", False, [c.caption for c in clips]),
                                          (CONTRADICTING, True, [c.caption for c in _contradicting(clips)])):
            audios, start = [], time.perf_counter()
            for i, (clip, prompt) in enumerate(zip(clips, prompts)):
                video = str(write_frames_mp4(Path(tmp) / f"{name[11]}{i}.mp4", clip.frames, clip.fps)) if with_video else None
                wave, sr = pipe.generate(video=video, prompt=prompt, duration=clip.duration, steps=steps, seed=i)
                wave = np.asarray(wave.detach().cpu().float() if hasattr(wave, "detach") else wave)
                if sr != SR:
                    wave = resample_poly(wave, SR, sr, axis=-1)
                audios.append(_fit_length(wave, clip.audio.shape[1]))
            rows[name] = (audios, time.perf_counter() - start)
    return rows, None


CONTRADICTING = "generated (contradicting prompt)"


def _contradicting(clips: list[Clip]) -> list[Clip]:
    """For each clip, the next clip (cyclically) of another class: its caption is the contradicting prompt."""
    out = []
    for i, c in enumerate(clips):
        j = next((k % len(clips) for k in range(i + 1, i + len(clips))
                  if clips[k % len(clips)].labels[0] != c.labels[0]), i)
        out.append(clips[j])
    return out


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v != v else f"{v:.{digits}f}"


def main(args: argparse.Namespace) -> int:
    if args.n < 2:
        raise SystemExit("--n must be at least 2 (the shuffled baseline needs another clip)")
    clips, gen_s = heldout_clips(args.n, args.seed, args.duration, split=args.split)
    ref_clips, _ = heldout_clips(args.n, args.seed, args.duration, offset=args.n, split=args.split)
    reference = np.concatenate([window_features(c.audio, SR) for c in ref_clips])
    if args.classifier is not None and args.classifier.exists():
        clf = SpectralClassifier.load(args.classifier)
    else:
        clf = fit_classifier(args.train_per_class, args.seed)
        if args.classifier is not None:
            clf.save(args.classifier)
    rows = {
        "ground truth": ([c.audio for c in clips], gen_s),
        "silence": ([np.zeros_like(c.audio) for c in clips], 0.0),
        "shuffled": ([_fit_length(clips[(i + 1) % len(clips)].audio, c.audio.shape[1]) for i, c in enumerate(clips)], 0.0),
    }
    generated, why = _generated_rows(clips, args.model, args.steps)
    rows.update(generated)
    prompt_classes = [c.labels[0] for c in _contradicting(clips)]
    results = {name: score(clips, audios, reference, clf, secs, prompt_classes if name == CONTRADICTING else None)
               for name, (audios, secs) in rows.items()}

    print(f"synthetic eval: {args.n} held-out clips of {args.duration} s (seed {args.seed}, split {args.split}); "
          f"classifier fitted on {args.train_per_class}/class training clips")
    head = f"{'row':<33}{'F1@50ms':>9}{'err ms':>8}{'DeSync s':>10}{'(def.)':>8}{'class':>7}{'stereo':>8}{'FD':>9}{'RTF':>8}"
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(f"{name:<33}{_fmt(r['onset_f1_50ms']):>9}{_fmt(r['onset_err_ms'], 1):>8}{_fmt(r['desync_s']):>10}"
              f"{_fmt(r['desync_defined'], 2):>8}{_fmt(r['class_acc'], 2):>7}{_fmt(r['stereo_corr'], 2):>8}"
              f"{_fmt(r['frechet'], 2):>9}{_fmt(r['rtf'], 3):>8}")
    if why:
        print(f"generated rows skipped: {why}")
    print("targets for the trained model: F1 >= 0.8, DeSync <= 0.1 s, class >= 0.9, stereo >= 0.8")
    if args.json is not None:
        args.json.write_text(json.dumps({"n": args.n, "seed": args.seed, "duration": args.duration, "split": args.split,
                                         "rows": results, "skipped": why}, indent=2))
    return 0
