"""The model contract: the single source of truth shared by train/, export/ and the runtime.

Everything a model file must say about itself so that a runtime with no torch and no TensorFlow
can feed it correctly: value range, channel order, layout, tile size, the size multiple the
network needs, and what it was trained for. train/ and export/ import these names; they never
restate them.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: Key under which the contract JSON is stored: TFLite flatbuffer metadata name and ONNX metadata_props key.
METADATA_KEY = "edge_restore_contract"
#: Version of the contract schema; bumped when a field changes meaning.
CONTRACT_VERSION = 1

#: Pixel values enter and leave every model as float in this closed range (before quantization).
VALUE_RANGE: tuple[float, float] = (0.0, 1.0)
#: Channel order of colour models.
CHANNEL_ORDER = "RGB"
#: Layout of the torch and ONNX models (the TFLite models are NHWC).
TORCH_LAYOUT = "NCHW"
TFLITE_LAYOUT = "NHWC"
#: Default square tile side of the static-shape edge models.
DEFAULT_TILE = 256
#: Default overlap between neighbouring tiles, in pixels.
DEFAULT_OVERLAP = 16
#: Pixel range in 8-bit images; the int8 input/output tensors use exactly this grid.
PIXEL_MAX = 255.0

#: pnp-prior: a denoiser of what plug-and-play deconvolution's data step leaves (edge_runtime.deblur)
TASKS = ("denoise", "deblur", "both", "pnp-prior")
#: Bounds on what a model file may make the runtime parse and allocate (a contract is ~300 bytes;
#: the tiler allocates a handful of T x T x C float buffers and a T-row band, so T is capped).
MAX_CONTRACT_BYTES = 64 * 1024
MAX_CONTRACT_DEPTH = 16
MAX_TILE = 1024


class ContractError(ValueError):
    """A model's contract is missing, malformed or inconsistent."""


def io_quantization(dtype: str = "int8") -> tuple[float, int]:
    """Scale and zero point that put 8-bit pixel values exactly on the quantized grid.

    The model's input and output are pinned to this grid during QAT, so an int8 model reads and
    writes 8-bit pixels with no extra rounding. Runtimes must still read the parameters from the
    model; this function is what the exporter pins them to.
    """
    if dtype == "int8":
        return 1.0 / PIXEL_MAX, -128
    if dtype == "uint8":
        return 1.0 / PIXEL_MAX, 0
    raise ContractError(f"unsupported quantized I/O dtype {dtype!r} (use int8 or uint8)")


@dataclass(frozen=True)
class ModelContract:
    """What a model promises its runtime. Stored as JSON inside every exported file."""

    task: str = "denoise"
    channels: int = 3
    tile_size: int = DEFAULT_TILE
    size_multiple: int = 8
    overlap: int = DEFAULT_OVERLAP
    value_range: tuple[float, float] = VALUE_RANGE
    channel_order: str = CHANNEL_ORDER
    layout: str = TFLITE_LAYOUT
    residual: bool = True
    quantization: str = "float"  # float | fp16 | int8-qat | int8-ptq
    preset: str = ""
    model_name: str = ""
    recipe: dict[str, Any] = field(default_factory=dict)
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ContractError if any field has the wrong type or is out of its allowed set."""
        for name in ("channels", "tile_size", "size_multiple", "overlap", "version"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ContractError(f"{name} must be an integer, got {value!r:.40}")
        for name in ("task", "channel_order", "layout", "quantization", "preset", "model_name"):
            if not isinstance(getattr(self, name), str):
                raise ContractError(f"{name} must be a string, got {getattr(self, name)!r:.40}")
        if not isinstance(self.residual, bool) or not isinstance(self.recipe, dict):
            raise ContractError("residual must be true/false and recipe an object")
        if self.task not in TASKS:
            raise ContractError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.channels not in (1, 3):
            raise ContractError(f"channels must be 1 or 3, got {self.channels}")
        if not 1 <= self.tile_size <= MAX_TILE:
            raise ContractError(f"tile_size {self.tile_size} must be in [1, {MAX_TILE}]")
        if self.size_multiple < 1 or self.tile_size < 1 or self.tile_size % self.size_multiple:
            raise ContractError(
                f"tile_size {self.tile_size} must be a positive multiple of size_multiple {self.size_multiple}"
            )
        if not 0 <= self.overlap < self.tile_size // 2:
            raise ContractError(f"overlap {self.overlap} must be in [0, tile_size/2)")
        if self.layout not in (TORCH_LAYOUT, TFLITE_LAYOUT):
            raise ContractError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        if tuple(self.value_range) != VALUE_RANGE:
            raise ContractError(f"value_range must be {VALUE_RANGE}, got {self.value_range}")
        if self.version > CONTRACT_VERSION:
            raise ContractError(f"contract version {self.version} is newer than this runtime ({CONTRACT_VERSION})")

    def to_json(self) -> str:
        """Serialise to compact, key-sorted JSON."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def replace(self, **changes: Any) -> "ModelContract":
        """A copy with some fields changed (validated again)."""
        return ModelContract(**{**asdict(self), **changes})

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelContract":
        """Parse and validate a contract; unknown keys are ignored so newer writers stay readable.

        Size and nesting are bounded before parsing: the text comes from a model file.
        """
        if len(text) > MAX_CONTRACT_BYTES:
            raise ContractError(f"model contract is {len(text):,} bytes, more than the {MAX_CONTRACT_BYTES:,} allowed")
        depth = json_depth(text)
        if depth > MAX_CONTRACT_DEPTH:
            raise ContractError(f"model contract is nested {depth} levels deep (at most {MAX_CONTRACT_DEPTH})")
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ContractError(f"model contract is not valid JSON: {str(exc)[:200]}") from None
        if not isinstance(data, dict):
            raise ContractError("model contract must be a JSON object")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if "value_range" in kwargs:
            if not isinstance(kwargs["value_range"], list):
                raise ContractError(f"value_range must be a list of two numbers, got {kwargs['value_range']!r:.40}")
            kwargs["value_range"] = tuple(kwargs["value_range"])
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ContractError(f"model contract has a field of the wrong type: {exc}") from None


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of [ and { in JSON text (brackets inside strings not counted), without parsing it."""
    data = text.encode("utf-8", "replace") if isinstance(text, str) else bytes(text)
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest
