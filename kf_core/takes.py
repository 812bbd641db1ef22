"""Best of N: generate N takes of the same video and keep the one whose sound follows the picture.

The score is weight-free, in the spirit of AV-Align (Yariv et al. 2024: audio onset peaks vs
optical-flow peaks, IoU within one frame), with frame differences instead of optical flow:
- visual events: peaks of the video's motion-change train — the per-frame energy of the second
  frame difference |F[t+1] − 2F[t] + F[t−1]| (`spatial.motion_cells`; a ball reversing, a stick
  stopping, a lamp switching on), minus its 0.5 s running median, local maxima within ±50 ms that
  reach `rel_threshold` of the clip's 99th-percentile peak;
- audio events: `sync_metrics.detect_onsets` of the take;
- `f1`: one-to-one matching of the two within max(50 ms, 1.5 frames) (`sync_metrics.onset_scores`;
  F1 and AV-Align's IoU rank alike: IoU = F1 / (2 − F1));
- `corr`: Pearson correlation of the audio onset envelope, pooled to the frame clock and widened
  by ±1 frame, with the motion-change train — a continuous tie-breaker (F1 moves in steps).
`score` = f1 + 0.25·corr: higher is better. With a full Synchformer checkpoint (`kf_core.encoders.
sync_av`), each take also gets DeSync (mean |predicted offset| over the first and last 4.8 s, s)
and takes are ranked by DeSync first, the weight-free score breaking its 0.2 s-grid ties.

The N takes share the encoded conditions and differ only in their start noise: one batch of N
from `seed`, so take 0 is exactly the single take of that seed and a seed gives the same takes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy.ndimage import maximum_filter1d, median_filter

from .eval.sync_metrics import detect_onsets, onset_scores, pearson
from .io import frames_from_images, resample, sample_frames
from .pipeline import (FoleyPipeline, decode_mel, encode_text, encode_video, open_video, sample_latents,
                       to_stereo, vocode)
from .spatial import StereoConfig, onset_train, motion_cells, video_frames

SYNC_FPS, SYNC_SR = 25.0, 16000  # what Synchformer sees: 25 fps frames, 16 kHz audio

__all__ = ["VisualEvents", "TakeScore", "Ranking", "Takes", "visual_events", "score_take", "rank", "rank_takes",
           "desync_takes", "generate_takes"]


@dataclass(frozen=True)
class VisualEvents:
    """The video's motion-change train `train` [T] at `fps` and its peak `times` [K] (s)."""

    train: np.ndarray
    fps: float
    times: np.ndarray


@dataclass(frozen=True)
class TakeScore:
    """How well one take follows the video (module docstring). Higher `score` is better."""

    score: float
    f1: float
    corr: float
    audio_onsets: int
    visual_events: int
    desync_s: float | None = None

    def describe(self) -> str:
        desync = "" if self.desync_s is None else f", DeSync {self.desync_s:.2f} s"
        return (f"score {self.score:.3f} (onset-motion F1 {self.f1:.2f} over {self.audio_onsets} onsets / "
                f"{self.visual_events} motion events, envelope corr {self.corr:+.2f}{desync})")


@dataclass(frozen=True)
class Ranking:
    """Scores of N takes and `order` (take indices, best first)."""

    scores: tuple[TakeScore, ...]
    order: tuple[int, ...]

    @property
    def best(self) -> int:
        return self.order[0]

    def report(self) -> str:
        """One line per take, the best marked: what a node shows and the CLI prints."""
        return "\n".join(f"take {i}{' (best)' if i == self.best else ''}: {s.describe()}"
                         for i, s in enumerate(self.scores))


@dataclass(frozen=True)
class Takes:
    """All N takes [N, C, T] at `sample_rate`, their Ranking, and (stereo) the best take [2, T]."""

    waveforms: torch.Tensor
    sample_rate: int
    ranking: Ranking
    stereo: torch.Tensor | None = field(default=None, repr=False)

    @property
    def best(self) -> int:
        return self.ranking.best

    def report(self) -> str:
        return self.ranking.report()


def visual_events(frames: torch.Tensor, fps: float, *, rel_threshold: float = 0.25,
                  cfg: StereoConfig = StereoConfig()) -> VisualEvents:
    """uint8 frames [T,3,S,S] at fps -> VisualEvents (the motion-change train and its peaks)."""
    train = motion_cells(frames, cfg)["a"].sum(1)                                  # T
    rise = np.maximum(train - median_filter(train, size=max(3, int(0.5 * fps) | 1), mode="nearest"), 0.0)
    local = rise == maximum_filter1d(rise, size=max(3, int(0.1 * fps) | 1), mode="nearest")
    ref = float(np.percentile(rise, 99)) if rise.size else 0.0
    peaks = np.flatnonzero(local & (rise > rel_threshold * ref) & (rise > 2.5e-4 * frames.shape[-1] ** 2))
    return VisualEvents(rise, float(fps), peaks / float(fps))


def score_take(audio: np.ndarray, sample_rate: int, events: VisualEvents, desync_s: float | None = None) -> TakeScore:
    """Audio [C, N] or [N] + the video's VisualEvents -> TakeScore."""
    audio = np.asarray(audio, np.float64)
    mono = audio.mean(0) if audio.ndim == 2 else audio
    onsets = detect_onsets(mono, sample_rate)
    tol = max(0.05, 1.5 / events.fps)
    f1 = onset_scores(events.times, onsets, tol)["f1"]
    env = maximum_filter1d(onset_train(mono, sample_rate, events.train.size, events.fps), 3, mode="nearest")
    corr = pearson(env, events.train)
    corr = 0.0 if math.isnan(corr) else corr
    return TakeScore(f1 + 0.25 * corr, f1, corr, int(onsets.size), int(events.times.size), desync_s)


def rank(scores: list[TakeScore] | tuple[TakeScore, ...]) -> tuple[int, ...]:
    """Take scores -> take indices, best first: by DeSync when every take has one (lower first),
    then by the weight-free score (higher first), then by index (stable, deterministic)."""
    def key(i: int):
        s = scores[i]
        desync = s.desync_s if all(x.desync_s is not None for x in scores) else 0.0
        return (desync, -s.score, i)
    return tuple(sorted(range(len(scores)), key=key))


def rank_takes(waveforms: torch.Tensor, sample_rate: int, video, *, fps: float | None = None,
               sync_model=None) -> Ranking:
    """Takes [N, C, T] (any audio: ours, MMAudio's, ...) + their video (path, IMAGE [N,H,W,3] + fps,
    or VideoClip) -> Ranking. `sync_model` (optional `SyncNet`) adds DeSync."""
    if waveforms.ndim != 3 or waveforms.shape[0] == 0 or waveforms.shape[-1] == 0:
        raise ValueError(f"expected takes as audio [N, C, T] with N >= 1, got {tuple(waveforms.shape)}")
    frames, rate = video_frames(video, fps)
    events = visual_events(frames, rate)
    waves = waveforms.detach().float().cpu()
    desync = [None] * waves.shape[0] if sync_model is None else desync_takes(sync_model, video, waves, sample_rate, fps)
    scores = tuple(score_take(w.numpy(), sample_rate, events, d) for w, d in zip(waves, desync))
    return Ranking(scores, rank(scores))


def desync_takes(sync_model, video, waveforms: torch.Tensor, sample_rate: int, fps: float | None = None
                 ) -> list[float | None]:
    """A whole Synchformer (`encoders.sync_av.SyncNet`) + video + takes [N, C, T] -> each take's
    DeSync in seconds (None where the clip is shorter than the 4.8 s the model judges)."""
    clip = open_video(video, fps)
    vis = sync_model.vfeat_extractor.cfg  # the released model: 224 px centre crops
    if clip.path is not None:
        frames = sample_frames(clip.path, SYNC_FPS, size=vis.image_size, mode=vis.resize)
    else:
        frames = frames_from_images(clip.images, None if clip.timestamps else clip.fps, SYNC_FPS,
                                    size=vis.image_size, mode=vis.resize, timestamps=clip.timestamps)
    audio = torch.cat([resample(w.float().mean(0, keepdim=True), sample_rate, SYNC_SR) for w in waveforms])  # N T'
    return [None if math.isnan(d) else float(d) for d in sync_model.desync(frames, audio).tolist()]


def generate_takes(pipe: FoleyPipeline, video, n: int, *, fps: float | None = None, prompt: str = "",
                   negative_prompt: str = "", steps: int | None = None, sampler: str = "euler", schedule: str = "uniform",
                   cfg: float | None = None, shift: float | None = None, seed: int = 0, stereo: bool = True,
                   window: float | None = None, overlap: float = 1.0, sync_model=None, callback=None,
                   check_cancel=None) -> Takes:
    """Video (path, IMAGE [N,H,W,3] + fps, or VideoClip) -> Takes: n mono takes scored against the
    video, and (stereo=True) the best one through Mono2Stereo in `Takes.stereo`. steps / cfg None
    take the network's defaults, as in `FoleyPipeline.generate`.

    `sync_model` (a `SyncNet` from `kf_core.encoders.sync_av`, optional) adds DeSync to the ranking.
    """
    if not 1 <= n <= 64:
        raise ValueError(f"takes must be between 1 and 64, got {n}")
    c = pipe.components
    clip = open_video(video, fps)
    text = encode_text(c.text_encoder, prompt, negative_prompt)
    vcond = encode_video(c.visual_encoders, clip, check_cancel=check_cancel)
    lat = sample_latents(c.dit, text=text, video=vcond, steps=steps, sampler=sampler, schedule=schedule,
                         cfg=cfg, shift=shift, seed=seed, batch_size=n, callback=callback, window=window,
                         overlap=overlap, check_cancel=check_cancel)
    mel = decode_mel(c.codec, lat)
    audio = vocode(c.codec, mel)                                                  # N 1 T
    ranking = rank_takes(audio.waveform, audio.sample_rate, clip, sync_model=sync_model)
    best_stereo = None
    if stereo:
        best = replace(mel, mel=mel.mel[ranking.best:ranking.best + 1])
        best_stereo = vocode(c.codec, to_stereo(c.codec, best, vcond)).waveform[0]   # 2 T
    return Takes(audio.waveform, audio.sample_rate, ranking, best_stereo)
