"""The payload and its error-correcting code: 32 bits -> 138 coded bits, and soft decoding back.

    Payload(model=0x1234, seed=42).bits()             # 32 bits, model id then seed, MSB first
    coded = encode(payload)                           # [138] 0/1: (payload + CRC-8 + tail) * rate 1/3
    decoded = decode(soft)                            # soft [138] (> 0 means 0): Payload, or None if the CRC fails

The code is a textbook one: CRC-8 (poly 0x07) appended to the 32 payload bits, then a K = 7,
rate-1/3 convolutional code (generators 133, 171, 165 octal) with a 6-bit zero tail, decoded by a
soft-decision Viterbi search. Soft inputs are the per-coded-bit correlations the detector
measures, so weakly marked bits count for little and strongly marked ones for much.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Payload", "PAYLOAD_BITS", "CODED_BITS", "model_id", "known_model", "crc8", "encode", "decode",
           "viterbi"]

PAYLOAD_BITS = 32
_CRC_BITS = 8
_K = 7                                            # constraint length: 64 trellis states
_GENERATORS = (0o133, 0o171, 0o165)               # rate 1/3
_INFO_BITS = PAYLOAD_BITS + _CRC_BITS
CODED_BITS = (_INFO_BITS + _K - 1) * len(_GENERATORS)   # 138


def model_id(name: str) -> int:
    """A model's name ("kf-tiny", a folder name) -> its 16-bit id in the payload (CRC-32, folded)."""
    h = zlib.crc32(name.strip().lower().encode())
    return ((h >> 16) ^ h) & 0xFFFF


def known_model(ident: int) -> str | None:
    """A payload's model id -> the name it stands for, when it is one this pack knows (presets, the
    bundled kf-tiny, "comfyui" written by the nodes); None otherwise (e.g. a user's own folder)."""
    from ..config import PRESETS  # the name list only; config is a leaf module
    names = {"kf-tiny", "comfyui", *PRESETS}
    return next((n for n in sorted(names) if model_id(n) == ident), None)


@dataclass(frozen=True)
class Payload:
    """What a mark says: a 16-bit model id (`model_id(name)`, 0 = not recorded) and the low 16 bits
    of the generation seed."""

    model: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.model <= 0xFFFF and 0 <= self.seed <= 0xFFFF):
            raise ValueError(f"payload fields are 16-bit: model={self.model}, seed={self.seed} "
                             "(use Payload.for_generation to fold a name and any seed)")

    @classmethod
    def for_generation(cls, model_name: str | None, seed: int | None) -> "Payload":
        """A model name (None: not recorded) and seed (any int; None: 0) -> the payload to embed."""
        return cls(model_id(model_name) if model_name else 0, int(seed or 0) & 0xFFFF)

    @property
    def value(self) -> int:
        return (self.model << 16) | self.seed

    def bits(self) -> np.ndarray:
        """-> uint8 [32], most significant bit first."""
        return np.array([(self.value >> (31 - i)) & 1 for i in range(PAYLOAD_BITS)], np.uint8)

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> "Payload":
        v = int("".join(str(int(b)) for b in bits), 2)
        return cls(v >> 16, v & 0xFFFF)

    def __str__(self) -> str:
        name = known_model(self.model)
        model = f"model 0x{self.model:04x}" + (f" = {name}" if name else "")
        return f"0x{self.value:08x} ({model}, seed {self.seed} mod 65536)"


def crc8(bits: np.ndarray) -> np.ndarray:
    """Bits [N] -> their CRC-8 (polynomial x^8+x^2+x+1, zero init) as bits [8], MSB first."""
    reg = 0
    for b in bits:
        top = ((reg >> 7) & 1) ^ int(b)
        reg = ((reg << 1) & 0xFF) ^ (0x07 if top else 0)
    return np.array([(reg >> (7 - i)) & 1 for i in range(_CRC_BITS)], np.uint8)


def _taps() -> np.ndarray:
    """Generator taps [G, K]: tap k multiplies the input bit k steps ago (k = 0 is the newest)."""
    return np.array([[(g >> (_K - 1 - k)) & 1 for k in range(_K)] for g in _GENERATORS], np.uint8)


def _conv(bits: np.ndarray) -> np.ndarray:
    """Info bits [N] -> coded bits [(N + K-1)·G] (zero tail appended, outputs interleaved per step)."""
    u = np.concatenate([bits.astype(np.uint8), np.zeros(_K - 1, np.uint8)])
    hist = np.zeros(_K, np.uint8)
    out = []
    taps = _taps()
    for b in u:
        hist = np.roll(hist, 1)
        hist[0] = b
        out.append((taps @ hist) & 1)
    return np.concatenate(out).astype(np.uint8)


def encode(payload: Payload) -> np.ndarray:
    """Payload -> coded bits uint8 [CODED_BITS]."""
    bits = payload.bits()
    return _conv(np.concatenate([bits, crc8(bits)]))


def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """Per (state, input bit): the next state [S, 2] and the ±1 coded symbols [S, 2, G].

    A state holds the last K-1 input bits, newest in the highest bit."""
    n_states = 1 << (_K - 1)
    taps = _taps()
    nxt = np.zeros((n_states, 2), np.int64)
    sym = np.zeros((n_states, 2, len(_GENERATORS)), np.float64)
    for s in range(n_states):
        past = [(s >> (_K - 2 - k)) & 1 for k in range(_K - 1)]       # newest first
        for b in (0, 1):
            hist = np.array([b, *past], np.uint8)
            coded = (taps @ hist) & 1
            sym[s, b] = 1.0 - 2.0 * coded
            nxt[s, b] = (b << (_K - 2)) | (s >> 1)
    return nxt, sym


_NEXT, _SYM = _trellis()


def decode(soft: np.ndarray) -> Payload | None:
    """Soft values [CODED_BITS] (positive: bit 0 more likely) -> the most likely Payload, or None
    when its CRC does not check (too damaged to trust)."""
    info = viterbi(soft)
    bits, crc = info[:PAYLOAD_BITS], info[PAYLOAD_BITS:]
    if not np.array_equal(crc8(bits), crc):
        return None
    return Payload.from_bits(bits)


def viterbi(soft: np.ndarray) -> np.ndarray:
    """Soft values [CODED_BITS] -> the most likely info bits uint8 [40] (payload then CRC), unchecked."""
    soft = np.asarray(soft, np.float64)
    if soft.shape != (CODED_BITS,):
        raise ValueError(f"expected {CODED_BITS} soft values, got shape {soft.shape}")
    g = len(_GENERATORS)
    steps = soft.reshape(-1, g)                                           # N+K-1 G
    n_states = _NEXT.shape[0]
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    back = np.zeros((len(steps), n_states), np.int64)                   # argmax predecessor per state
    bit_of = np.zeros((len(steps), n_states), np.uint8)
    src = np.repeat(np.arange(n_states), 2)
    bit = np.tile([0, 1], n_states)
    dst = _NEXT.reshape(-1)
    for t, r in enumerate(steps):
        cand = metric[src] + _SYM.reshape(-1, g) @ r                     # S*2
        new = np.full(n_states, -np.inf)
        order = np.argsort(cand)                                          # ascending: the best write last
        new[dst[order]] = cand[order]
        winner = np.full(n_states, -1)
        winner[dst[order]] = order
        back[t], bit_of[t] = src[winner], bit[winner]
        metric = new
    state, out = 0, []                                                    # the zero tail ends in state 0
    for t in range(len(steps) - 1, -1, -1):
        out.append(bit_of[t, state])
        state = back[t, state]
    return np.array(out[::-1][:_INFO_BITS], np.uint8)
