"""The sync module (paper §3.3): projected Synchformer tokens -> the align feature a_f, one per audio token.

Shapes: B batch, Ls sync tokens, La audio latent tokens, J tubelet slots, D width.

Masks [B, Ls] (True = real token, real tokens first) describe clips of a padded batch: each clip
is then placed exactly as it would be alone, and padded tokens never reach a real audio token.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import SeqConfig

__all__ = ["segment_aligned", "align_feature", "sync_slots", "at_times"]


def sync_slots(s: torch.Tensor, *, tokens_per_segment: int = 8, frames_per_token: int = 2,
               stride_frames: int = 8) -> torch.Tensor:
    """Sync tokens [B, Ls, D] (whole segments, in order) -> one feature per frame pair [B, J, D]: the
    tokens that show the same two frames (overlapping segments) averaged."""
    b, ls, d = s.shape
    if ls % tokens_per_segment:
        raise ValueError(f"sync length {ls} is not a multiple of {tokens_per_segment} tokens per segment")
    step = stride_frames // frames_per_token                                        # slots between segment starts
    n_seg = ls // tokens_per_segment
    slot = (torch.arange(n_seg, device=s.device)[:, None] * step
            + torch.arange(tokens_per_segment, device=s.device)[None, :]).flatten()  # Ls
    n_slot = (n_seg - 1) * step + tokens_per_segment
    summed = s.new_zeros(b, n_slot, d).index_add_(1, slot, s)                        # B J D
    count = torch.zeros(n_slot, device=s.device).index_add_(0, slot, torch.ones(ls, device=s.device))
    return summed / count.to(s.dtype)[None, :, None]                                # B J D


def at_times(slots: torch.Tensor, times: torch.Tensor, *, fps: float = 25.0,
             frames_per_token: int = 2) -> torch.Tensor:
    """Slots [B, J, D] + instants [N] (seconds from the stream's first frame) -> [B, N, D]: each instant
    takes the slot whose frames cover it (past the last slot: the last one). Mono2Stereo reads sync
    features per mel frame this way."""
    j = torch.floor(times.to(torch.float64) * fps / frames_per_token).long().clamp_(0, slots.shape[1] - 1)
    return slots[:, j.to(slots.device)]                                             # B N D


def segment_aligned(s: torch.Tensor, seq: SeqConfig, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sync tokens [B, Ls, D] (+ mask [B, Ls]) -> one feature per audio latent token [B, La, D], each
    token placed at the time its frames show.

    The Synchformer reads 16-frame segments with stride 8 and gives 8 tokens per segment, one per
    2-frame tubelet, so token t of segment k shows frames k·8 + 2t and k·8 + 2t + 1, and every
    frame pair is seen by two segments. Spreading the Ls tokens evenly over the clip (MMAudio's
    nearest-exact upsampling) puts the second half of each segment up to ~0.3 s away from its
    frames; here the two tokens of each frame pair are averaged into one slot per tubelet
    (12.5 per second) and every audio token takes the slot covering its centre time. With a mask,
    only real tokens are averaged and audio past a clip's last slot takes that slot, as alone.
    """
    b, ls, d = s.shape
    per = seq.sync_segment // seq.sync_tokens             # frames per token (2)
    step = seq.sync_stride // per                         # slots between segment starts (4)
    n_seg = ls // seq.sync_tokens
    slot = (torch.arange(n_seg, device=s.device)[:, None] * step
            + torch.arange(seq.sync_tokens, device=s.device)[None, :]).flatten()      # Ls
    n_slot = (n_seg - 1) * step + seq.sync_tokens
    la = seq.latent_len
    centre = (torch.arange(la, device=s.device, dtype=torch.float64) + 0.5) * (
        seq.hop * seq.latent_downsample / seq.sample_rate)                          # La (s)
    j = torch.floor(centre * seq.sync_fps / per).long().clamp_(0, n_slot - 1)       # La
    if mask is None:
        slots = sync_slots(s, tokens_per_segment=seq.sync_tokens, frames_per_token=per,
                           stride_frames=seq.sync_stride)                           # B J D
        return slots[:, j]                                                          # B La D
    real = s.masked_fill(~mask[..., None], 0)                                       # B Ls D
    summed = s.new_zeros(b, n_slot, d).index_add_(1, slot, real)                    # B J D
    count = torch.zeros(b, n_slot, device=s.device).index_add_(1, slot, mask.float())  # B J
    slots = summed / count.clamp_min(1).to(s.dtype)[..., None]                      # B J D
    last = ((count > 0).sum(1) - 1).clamp_min(0)                                    # B
    jb = torch.minimum(j[None, :], last[:, None])                                   # B La
    return torch.gather(slots, 1, jb[..., None].expand(-1, -1, d))                  # B La D


def align_feature(s: torch.Tensor, seq: SeqConfig, mode: str, mask: torch.Tensor | None = None,
                  audio_lens: list[int] | None = None) -> torch.Tensor:
    """Projected sync tokens [B, Ls, D] -> a_f [B, La, D] by `mode` ("segments", or an F.interpolate
    mode for MMAudio's networks). mask [B, Ls] / audio_lens (B real audio tokens) describe padding."""
    if mode == "segments":
        return segment_aligned(s, seq, mask)                                        # B La D
    la = seq.latent_len
    kw = {"align_corners": False} if mode == "linear" else {}
    if mask is None and audio_lens is None:
        return F.interpolate(s.transpose(1, 2), size=la, mode=mode, **kw).transpose(1, 2)  # B La D
    # padded batch: spread each clip's own tokens over its own audio, as it would be alone
    sync_lens = mask.sum(1).tolist() if mask is not None else [s.shape[1]] * s.shape[0]
    audio_lens = audio_lens or [la] * s.shape[0]
    out = s.new_zeros(s.shape[0], la, s.shape[2])
    for i, (n, m) in enumerate(zip(sync_lens, audio_lens)):
        out[i, :m] = F.interpolate(s[i:i + 1, :n].transpose(1, 2), size=m, mode=mode, **kw)[0].T
    return out                                                                      # B La D
