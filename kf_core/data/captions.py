"""Caption templates: merge per-source phrases into one sentence (simultaneous or sequential).

Per-source phrases come from the scene generators ("a small red ball bouncing twice on a
wooden floor"); this module only decides how several of them read together. Temporal
concatenation (paper §5.2) merges the single-event captions in order with "then".
"""
from __future__ import annotations

import re

__all__ = ["together", "in_sequence"]


def _articles(text: str) -> str:
    return re.sub(r"\ba ([aeiou])", r"an \1", text)  # "a orange" -> "an orange"


def together(phrases: list[str]) -> str:
    """Phrases of sources heard at the same time -> 'a, b and c'."""
    if not phrases:
        raise ValueError("together() needs at least one phrase")
    parts = list(phrases)
    return _articles(parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1])


def in_sequence(captions: list[str]) -> str:
    """Captions of clips played one after another -> 'a, then b, then c'."""
    if not captions:
        raise ValueError("in_sequence() needs at least one caption")
    return _articles(", then ".join(captions))
