"""Stopping a batch cleanly on SIGINT/SIGTERM: the signal is recorded and raised as
:class:`Interrupted` at the next safe point (between tiles or files), so outputs and the
manifest are never left half-written."""

from __future__ import annotations

import signal


class Interrupted(BaseException):
    """Raised at the next safe point after SIGINT/SIGTERM (a BaseException: no handler swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """While active, SIGINT/SIGTERM only ask the batch to stop at the next check(); a second one stops at once."""

    SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.finishing = False  # after the batch loop: only record signals (the manifest is being written)
        self._old: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        if self.signum is not None and not self.finishing:
            raise Interrupted(signum)
        self.signum = self.signum or signum

    def check(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)

    def __enter__(self) -> "StopSignals":
        try:
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
