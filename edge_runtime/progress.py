"""A tiny stderr progress bar (no tqdm needed on the board)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """`bar.update(done, label)` redraws `[#####.....]  3.5/10  35%  label` in place.

    Disabled (a no-op) when `enabled` is false; by default enabled only on a terminal. Redraws at
    most ten times a second, and always on the last step.
    """

    def __init__(self, total: float, stream: TextIO | None = None, enabled: bool | None = None, width: int = 28) -> None:
        self.total = max(float(total), 1e-9)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(self.stream.isatty()) if enabled is None else enabled
        self.width = width
        self._last = 0.0
        self._shown = False
        self._start = time.monotonic()

    def update(self, done: float, label: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < self.total and now - self._last < 0.1:
            return
        self._last = now
        frac = min(max(done / self.total, 0.0), 1.0)
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        text = f"\r[{bar}] {done:.0f}/{self.total:.0f} {frac * 100:3.0f}% {now - self._start:5.1f}s {label[-40:]}"
        self.stream.write(text.ljust(100)[:100])
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
