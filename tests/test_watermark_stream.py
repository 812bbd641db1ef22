"""The watermark as a stream (how FoleyPipeline.save marks what it writes): block by block it is
the same samples as marking the whole clip, whatever the block sizes and at any rate, and the
whole-clip mark is the band's STFT change resynthesised (checked against torch.stft/istft)."""
from __future__ import annotations

import pytest
import torch

from kf_core.data.synthetic import make_clip
from kf_core.io import resample
from kf_core.watermark import Payload, WatermarkConfig, detect_watermark, embed_stream, embed_watermark, pattern_for
from kf_core.watermark.code import encode
from kf_core.watermark.embed import _tonal_relief, tile_gain

SR = 44100
PAYLOAD = Payload.for_generation("kf-tiny", 4242)


@pytest.fixture(scope="module")
def host() -> torch.Tensor:
    return torch.from_numpy(make_clip(1004, duration=4.0, fps=12.0, size=64).audio)        # 2 T


def _blocks(wave: torch.Tensor, seed: int, most: int) -> list[torch.Tensor]:
    """Cut [..., T] into blocks of random sizes 1..most (so cuts fall anywhere in a tile or frame)."""
    g, sizes, left = torch.Generator().manual_seed(seed), [], wave.shape[-1]
    while left:
        sizes.append(min(left, int(torch.randint(1, most + 1, (1,), generator=g))))
        left -= sizes[-1]
    return list(torch.split(wave, sizes, -1))


@pytest.mark.parametrize("seed,most", [(0, 1500), (1, 9000), (2, 60000)])
def test_the_stream_is_the_whole_clips_mark_bit_for_bit(host, seed, most):
    whole = embed_watermark(host, SR, PAYLOAD)
    out = list(embed_stream(_blocks(host, seed, most), SR, PAYLOAD))
    assert all(b.shape[0] == 2 for b in out) and len(out) > 1
    assert torch.equal(torch.cat(out, -1), whole)


def test_the_stream_at_16k_and_of_take_batches_matches_the_whole(host):
    host16 = resample(host, SR, 16000)
    whole = embed_watermark(host16, 16000, PAYLOAD)
    streamed = torch.cat(list(embed_stream(_blocks(host16, 3, 5000), 16000, PAYLOAD)), -1)
    assert torch.equal(streamed, whole) and detect_watermark(streamed, 16000).payload == PAYLOAD
    batch = torch.stack([host, 0.5 * host.flip(-1)])                                     # B C T
    streamed = torch.cat(list(embed_stream(_blocks(batch, 4, 8000), SR, PAYLOAD)), -1)
    assert torch.equal(streamed, embed_watermark(batch, SR, PAYLOAD))


def test_the_mark_is_the_bands_stft_change_resynthesised(host):
    """An independent reference: torch.stft, the tile gains, torch.istft; equal away from the ends."""
    cfg = WatermarkConfig()
    x = host.float()
    window = torch.hann_window(cfg.n_fft)
    spec = torch.stft(x, cfg.n_fft, cfg.embed_hop, window=window, return_complex=True).transpose(1, 2)  # C F K'
    lo, hi = cfg.bin_range
    band = spec[..., lo:hi]
    power = band.abs().square().reshape(*band.shape[:2], cfg.n_bands, cfg.band_bins).sum(-1)
    signs = pattern_for("kling-foley", cfg).signs(encode(PAYLOAD))
    gain = tile_gain(signs, cfg, spec.shape[1]) * _tonal_relief(power, cfg)                  # C F Bn
    change = torch.zeros_like(spec)
    change[..., lo:hi] = band * gain.repeat_interleave(cfg.band_bins, -1)
    ref = torch.istft(change.transpose(1, 2), cfg.n_fft, cfg.embed_hop, window=window, length=x.shape[-1])
    mark = embed_watermark(host, SR, PAYLOAD, clip=False) - x
    edge = cfg.n_fft
    assert torch.allclose(mark[:, edge:-edge], ref[:, edge:-edge], atol=1e-6)
    assert ref.abs().max() > 1e-3                                                        # not a trivial zero


def test_unclipped_for_a_level_stage_and_too_short_to_mark():
    loud = 1.2 * torch.sin(2 * torch.pi * 440 * torch.arange(SR) / SR)[None].repeat(2, 1)
    assert embed_watermark(loud, SR, PAYLOAD).abs().max() <= 1.0
    assert embed_watermark(loud, SR, PAYLOAD, clip=False).abs().max() > 1.0
    tiny = 0.1 * torch.randn(2, 300, generator=torch.Generator().manual_seed(5))          # < half a window
    assert torch.equal(embed_watermark(tiny, SR, PAYLOAD), tiny)
    assert torch.equal(torch.cat(list(embed_stream(torch.split(tiny, 7, -1), SR, PAYLOAD)), -1), tiny)
    assert list(embed_stream([], SR, PAYLOAD)) == []
