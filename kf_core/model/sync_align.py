"""Where a Synchformer token is in time, and features of the sync stream at any instant.

The Synchformer reads 16-frame segments with stride 8 and gives 8 tokens per segment, one per
2-frame tubelet, so token t of segment k shows frames k·8 + 2t and k·8 + 2t + 1, and every frame
pair is seen by two segments. `sync_slots` averages the tokens that show the same frame pair into
one slot per tubelet (12.5 per second at 25 fps); `at_times` gives each requested instant the slot
whose frames cover it. The DiT places its align feature this way (`sync_upsample="segments"`), and
Mono2Stereo reads sync features per mel frame the same way.

Shapes: B batch, Ls sync tokens, J slots, N requested times, D width.
"""
from __future__ import annotations

import torch

__all__ = ["sync_slots", "at_times"]


def sync_slots(s: torch.Tensor, *, tokens_per_segment: int = 8, frames_per_token: int = 2,
               stride_frames: int = 8) -> torch.Tensor:
    """Sync tokens [B, Ls, D] (whole segments, in order) -> one feature per frame pair [B, J, D]."""
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
    """Slots [B, J, D] + instants [N] (seconds from the stream's first frame) -> [B, N, D]; an instant
    past the last slot takes the last one."""
    j = torch.floor(times.to(torch.float64) * fps / frames_per_token).long().clamp_(0, slots.shape[1] - 1)
    return slots[:, j.to(slots.device)]                                             # B N D
