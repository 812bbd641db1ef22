"""kf-tiny's Mono2Stereo stage: short stereo clips of the world + the frozen sync encoder's tokens.

The pan of a synthetic source is only knowable from where it is on screen, and kf-tiny's sync
encoder is trained to say, per 80 ms tubelet, where the sound of that moment comes from
(`tiny_sync`). So Mono2Stereo reads those sync tokens (`Mono2StereoConfig.cond="sync"`): each mel
frame takes the tokens that show its instant, and the network predicts one pan p per mel bin and
frame, L = 2p·M, R = 2(1 − p)·M in linear mel. That is the paper's two ratios (L/M, R/M) with
the constraint L/M + R/M = 2 built in, so the module can move energy between the ears but never
create or remove it (the mono mix is exactly the decoder's mel).

Shape legend: N clips, T samples, Ls sync tokens, Ds sync width, M mel bins, F mel frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..codec.mel import MelSpectrogram
from ..codec.mono2stereo import Mono2Stereo
from ..config import CodecConfig, SeqConfig
from .stereo import StereoTrainConfig, StereoTrainer

__all__ = ["StereoItem", "stereo_item", "train_stereo"]

STEREO_CLIP_S = 2.56  # 64 sync frames = 7 segments, 220 mel frames


@dataclass(frozen=True)
class StereoItem:
    audio: torch.Tensor      # 2 T float16
    sync: torch.Tensor       # Ls Ds float32


def stereo_item(index: int, *, seed: int, sync_encoder, sample_rate: int = 44100, looks: str = "train") -> StereoItem:
    """Training clip `index` of this stage's own seed range -> stereo audio and its sync tokens."""
    from ..data.dataset import split_seed
    from ..data.synthetic import make_clip
    from ..encoders import sync_frames_from_uint8
    from ..io import frames_from_images, streams_for
    c = make_clip(split_seed(600_000_000 + index, seed, "train" if looks == "train" else "heldout"),
                  duration=STEREO_CLIP_S, sample_rate=sample_rate, looks=looks)
    cfg = sync_encoder.cfg
    spec = streams_for(SeqConfig(STEREO_CLIP_S, sample_rate=sample_rate), sync_size=cfg.image_size,
                       sync_mode=cfg.resize)["sync"]
    frames = frames_from_images(torch.from_numpy(c.frames), c.fps, spec.fps, size=spec.size, mode=spec.mode,
                                count=spec.count, duration=STEREO_CLIP_S, min_count=spec.min_count)
    with torch.no_grad():
        sync = sync_encoder.encode_video(sync_frames_from_uint8(frames)[None])[0].float()     # Ls Ds
    return StereoItem(torch.from_numpy(c.audio).half(), sync)


def train_stereo(items: list[StereoItem], codec_cfg: CodecConfig, *, steps: int, batch_size: int, seed: int,
                 hidden: int = 64, layers: int = 4, log_every: int = 10) -> tuple[Mono2Stereo, list[dict]]:
    """Stereo items -> a sync-conditioned Mono2Stereo trained on whole clips; logged rows."""
    torch.manual_seed(seed)
    model = Mono2Stereo(codec_cfg.n_mels, visual_dim=items[0].sync.shape[-1], hidden=hidden, layers=layers,
                        log=codec_cfg.log, cond="sync", frame_seconds=codec_cfg.hop / codec_cfg.sample_rate)
    cfg = StereoTrainConfig(batch_size=batch_size, lr=2e-3, seed=seed)
    trainer = StereoTrainer(model, cfg, [it.audio for it in items], MelSpectrogram(codec_cfg), log=codec_cfg.log,
                            hop=codec_cfg.hop, conds=[it.sync for it in items], steps=steps)
    rows = []
    for step in range(1, steps + 1):
        out = trainer.train_step()
        if step % log_every == 0 or step == steps:
            rows.append({"step": step, **out})
    return model.eval(), rows
