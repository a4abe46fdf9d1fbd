"""Stamp the model contract into exported files (TFLite flatbuffer metadata, ONNX metadata_props)."""

from __future__ import annotations

import numpy as np

from edge_runtime.contract import METADATA_KEY, ModelContract


def stamp_tflite(model_bytes: bytes, contract: ModelContract, extra: dict[str, str] | None = None) -> bytes:
    """Return the TFLite model with the contract (and any `extra` entries) in `Model.metadata`.

    An existing entry of the same name is replaced, so stamping twice is harmless.
    """
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    entries = {METADATA_KEY: contract.to_json(), **(extra or {})}
    kept = [m for m in (model.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) not in entries]
    for name, text in entries.items():
        buf = schema_fb.BufferT()
        buf.data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        model.buffers.append(buf)
        meta = schema_fb.MetadataT()
        meta.name = name
        meta.buffer = len(model.buffers) - 1
        kept.append(meta)
    model.metadata = kept
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def stamp_onnx(model, contract: ModelContract, extra: dict[str, str] | None = None) -> None:
    """Put the contract (and `extra`) into an onnx.ModelProto's metadata_props, in place."""
    entries = {METADATA_KEY: contract.to_json(), **(extra or {})}
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
