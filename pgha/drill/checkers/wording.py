"""What every verdict shares besides the history: the type of its metrics, how many examples its
details list, and how it words a duration."""

from __future__ import annotations

Metrics = dict[str, float | int | str | None]

MAX_DETAILS = 20  # ids or examples listed in details; the metrics carry the full counts


def seconds(s: float) -> str:
    """A duration in a verdict's sentence: "3.05 s"."""
    return f"{s:.2f} s"
