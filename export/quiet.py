"""Keep TensorFlow's C++ chatter off the export log unless asked for (`python -m export -v`).

Most of it obeys TF_CPP_MIN_LOG_LEVEL, but a few lines do not: the oneDNN notice and absl's
"log messages before absl::InitializeLog()" at import, the quantizer's "fully_quantize: ..." line.
Those are written straight to file descriptor 2, so they are held back at that level around the
import and each conversion, and shown after all if the step fails.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

#: TF_CPP_MIN_LOG_LEVEL from which output is held back (2: INFO and WARNING hidden).
QUIET_LEVEL = 2
_console: TextIO | None = None


def quiet() -> bool:
    """Whether TensorFlow is asked to keep to errors (`python -m export` sets this unless -v)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= QUIET_LEVEL
    except ValueError:
        return False


def console() -> TextIO:
    """Where progress bars go: the real stderr, also while fd 2 is held back."""
    return _console or sys.stderr


@contextmanager
def held_stderr(enabled: bool | None = None) -> Iterator[None]:
    """Send fd 2 to a temporary file for the block (if `enabled`, default quiet()); replay it on error."""
    global _console
    if not (quiet() if enabled is None else enabled) or _console is not None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        _console = os.fdopen(os.dup(saved), "w", buffering=1)
        try:
            yield
        except BaseException:
            _restore(saved)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))  # the context of the failure
            raise
        finally:
            _restore(saved)


def _restore(saved: int) -> None:
    """Put fd 2 back (idempotent: the error path restores before replaying)."""
    global _console
    if _console is None:
        return
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    _console.close()
    _console = None
