"""Where the shipped models live, their build-time SHA-256 and what their model cards say.

In a checkout the models are the repo's `models/`; an installed wheel carries the deployable INT8
files and their cards as `edge_runtime/models/`, plus `SHA256SUMS` (written by setup.py when the
wheel is built, `sha256sum` format) so that a model loaded by short name is checked to be the
file that was shipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError

SUMS_FILE = "SHA256SUMS"
_PACKAGE_MODELS = Path(__file__).resolve().parent / "models"
_CHECKOUT_MODELS = Path(__file__).resolve().parent.parent / "models"
_CARD_PSNR = re.compile(r"^\*\*INT8 PSNR:\*\*\s*(?P<text>.+?)\s*$", re.MULTILINE)


def shipped_models_dir() -> Path:
    """The installed package's models/ when there is one, else the checkout's models/."""
    # Never site-packages/models in an install: that name belongs to nobody in particular.
    return _PACKAGE_MODELS if _PACKAGE_MODELS.is_dir() else _CHECKOUT_MODELS


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(folder: Path) -> dict[str, str]:
    """{file name: hex digest} from folder/SHA256SUMS; empty when there is none (a checkout)."""
    try:
        text = (folder / SUMS_FILE).read_text(encoding="utf-8")
    except OSError:
        return {}
    sums = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            sums[name.strip()] = digest.strip().lower()
    return sums


def verify_shipped(path: Path) -> None:
    """Raise ModelError if `path` is listed in its folder's SHA256SUMS with another digest."""
    expected = read_sums(path.parent).get(path.name)
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ModelError(
            f"{path} does not match the SHA-256 recorded when the package was built "
            f"({actual[:12]}... instead of {expected[:12]}...): the file was changed or damaged; reinstall edge-restore"
        )


@dataclass(frozen=True)
class CardInfo:
    """What a model's card says about it: the INT8 PSNR line, or '' when there is no card/line."""

    card: Path | None
    psnr: str = ""


def card_for(model: Path) -> CardInfo:
    """The card of NAME_int8.tflite is NAME.md beside it; its `**INT8 PSNR:**` line is the headline number."""
    stem = model.stem
    if not stem.endswith("_int8"):
        return CardInfo(None)
    card = model.with_name(stem[: -len("_int8")] + ".md")
    try:
        text = card.read_text(encoding="utf-8")
    except OSError:
        return CardInfo(None)
    m = _CARD_PSNR.search(text)
    return CardInfo(card, m.group("text") if m else "")
