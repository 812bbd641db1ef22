"""An inaudible, keyed watermark in the spectrum of every generated track, and its detector (paper §8).

    marked = embed_watermark(wave [..., T], sr, Payload.for_generation("kf-tiny", seed))
    blocks = embed_stream(blocks [..., n], sr, payload)   # the same samples, block by block
    d = detect_watermark(wave [C,T], sr)        # d.present, d.score (z), d.p_value, d.payload
    python -m kf_core watermark detect FILE...  # audio or video files

The design, and why.
- Where: the STFT magnitude (1024-point Hann, 44.1 kHz) between 200 Hz and 7 kHz. Codecs keep
  magnitudes and discard phase detail, so a magnitude mark survives AAC/MP3/Opus; everything
  below 7 kHz survives resampling to 16 kHz; a multiplicative change survives any gain.
- What: a patchwork of tiles, 46 ms x 86 Hz, each scaled by 1 ± strength (±1.2 dB at 0.15) by
  a keyed sign. The change is proportional to the sound under it, so it hides where the sound is
  (quiet stays quiet, silence stays silent) and never adds noise of its own. The tile signs form
  a 1.49 s period that repeats for the whole clip, so any excerpt of ~1.5 s holds every tile
  and a time shift only moves where the period starts; the detector tries every start.
- Sync/presence: 40 % of the tiles carry a fixed keyed pilot; the rest carry the payload:
  32 bits (16-bit model id, 16 bits of the seed) + CRC-8, rate-1/3 convolutional code (K = 7),
  each coded bit spread over 11 tiles per period at keyed places, soft-decoded by Viterbi.
- Detection: per tile the log-power minus the mean of its neighbouring bands at the same time
  (a broadband onset, a decay, a level change cancel; the mark, random from band to band, does
  not), weighted by the local variance, folded onto the period and correlated with the pilot.
  The keyed signs are fair coins independent of any unmarked audio, so the correlation z has
  mean 0, variance 1 and, by Hoeffding's inequality, P(z ≥ t) ≤ exp(-t²/2) whatever the audio;
  a union bound over the 256 alignments tried makes "present" (p ≤ 1e-3, z ≥ 4.99) a guaranteed
  false-positive rate, not a tuned threshold. Another key gives an independent pattern.
- Why not a learned watermark (AudioSeal, WavMark): those need weights and a GPU to be fast and
  their false-positive rates are empirical; this one is a page of STFT arithmetic, costs a
  few ms per audio second on a CPU, and its FPR is a theorem.
- What it does not survive: pitch/speed changes of a few per cent (the tiles move in frequency
  and time), heavy mixing where another sound is as loud as the Foley, and excerpts shorter than
  ~1.5 s or nearly silent (no sound, no mark). The bench (`python -m kf_core bench watermark`)
  measures all of it.
"""
from __future__ import annotations

from .code import CODED_BITS, PAYLOAD_BITS, Payload, known_model, model_id
from .detect import DEFAULT_FPR, Detection, detect_watermark
from .embed import embed_stream, embed_watermark
from .pattern import DEFAULT_KEY, WatermarkConfig, pattern_for

__all__ = ["Payload", "model_id", "known_model", "PAYLOAD_BITS", "CODED_BITS", "embed_watermark", "embed_stream",
           "detect_watermark", "Detection", "DEFAULT_KEY", "DEFAULT_FPR", "WatermarkConfig", "pattern_for"]
