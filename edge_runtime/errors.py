"""Typed runtime errors, each with a one-line message and the CLI exit code it maps to.

Exit codes follow BSD sysexits where one fits: 65 EX_DATAERR (bad input image), 66 EX_NOINPUT
(missing input), 73 EX_CANTCREAT (cannot write output), 78 EX_CONFIG (bad model / device).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_PARTIAL = 2
EXIT_BAD_IMAGE = 65
EXIT_NO_INPUT = 66
EXIT_CANT_WRITE = 73
EXIT_BAD_MODEL = 78


class EdgeRestoreError(Exception):
    """Base class: `str(exc)` is a single line fit for `edge-restore: error: ...`."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class UsageError(EdgeRestoreError):
    exit_code = EXIT_USAGE


class ModelError(EdgeRestoreError):
    """The model file is missing, not TFLite/ONNX, has no contract, or has the wrong shape/dtype."""

    exit_code = EXIT_BAD_MODEL


class DeviceError(ModelError):
    """The requested accelerator (Edge TPU delegate or device) is not available."""


class InputImageError(EdgeRestoreError):
    """The input image is unreadable, truncated, unsupported or too large (decompression bomb)."""

    exit_code = EXIT_BAD_IMAGE


class MissingInputError(EdgeRestoreError):
    exit_code = EXIT_NO_INPUT


class KernelError(EdgeRestoreError, ValueError):
    """A blur kernel is unreadable, not 2-D, not finite, negative or sums to zero.

    Also a ValueError, so array-level callers (train.classic) can catch it as one.
    """

    exit_code = EXIT_BAD_IMAGE  # EX_DATAERR: bad input data, like a bad image


class DependencyError(EdgeRestoreError):
    """An optional package a feature needs (e.g. OpenCV for NLM) is not installed; names the pip package."""

    exit_code = EXIT_BAD_MODEL  # EX_CONFIG, as for a missing TFLite interpreter


class OutputWriteError(EdgeRestoreError):
    """The output cannot be written (exists without --overwrite, would overwrite an input, I/O error)."""

    exit_code = EXIT_CANT_WRITE
