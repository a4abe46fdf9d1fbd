"""From a checkpoint to every deployable file: float/QDQ ONNX, float/FP16/INT8 TFLite, PTQ INT8."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_runtime.contract import DEFAULT_OVERLAP, DEFAULT_TILE, TFLITE_LAYOUT, ModelContract
from edge_runtime.tiling import reflect_indices
if __package__ == "export":  # a checkout: train/ is a top-level package beside export/
    from train.checkpoint import load_restorer, strip_checkpoint
    from train.data import PatchConfig, PatchSampler, list_images, load_images
    from train.degradations import DegradationConfig
    from train.quant import set_quant_mode
else:  # the installed wheel: edge_restore.export beside edge_restore.train
    from ..train.checkpoint import load_restorer, strip_checkpoint
    from ..train.data import PatchConfig, PatchSampler, list_images, load_images
    from ..train.degradations import DegradationConfig
    from ..train.quant import set_quant_mode

from .audit import audit_scales
from .onnx_export import export_onnx
from .onnx_to_tf import DEFAULT_UPSAMPLE
from .tflite_convert import tflite_float, tflite_fp16, tflite_int8_from_qdq, tflite_int8_ptq, write_bytes

log = logging.getLogger(__name__)


@dataclass
class ExportConfig:
    """What to export and where."""

    checkpoint: str
    out_dir: str = "out"
    name: str = "model"
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    io_dtype: str = "int8"  # int8 | uint8 | float32 for the integer models
    dynamic_onnx: bool = False
    ptq: bool = False
    ptq_data: list[str] = field(default_factory=list)
    ptq_samples: int = 64
    upsample: str = DEFAULT_UPSAMPLE  # or "resize" (see onnx_to_tf.UPSAMPLE_OPS)


def contract_for(ckpt: dict, cfg: ExportConfig) -> ModelContract:
    """The checkpoint's own contract (written by training), for this export's tile and file name.

    Each writer then sets the layout and quantization of the file it writes.
    """
    if "contract" not in ckpt:
        raise ValueError("checkpoint carries no model contract; it was written by an older edge-restore-train "
                         "(resume or fine-tune it once with the current one)")
    return ModelContract.from_json(ckpt["contract"]).replace(
        tile_size=cfg.tile, overlap=cfg.overlap, model_name=cfg.name, layout=TFLITE_LAYOUT, quantization="float")


def representative_tiles(ckpt: dict, tile: int, channels: int, folders: list[str], count: int) -> list[np.ndarray]:
    """Degraded NHWC tiles for PTQ calibration, drawn by the training data code."""
    deg = DegradationConfig.from_dict(ckpt.get("train_config", {}).get("degradation", {}))
    images = load_images([p for f in folders for p in list_images(f)], channels) if folders else []
    # photos smaller than the tile are reflected up to it, as the runtime reads them
    images = [_reflected_to(im, tile) for im in images]
    sampler = PatchSampler(images, deg, PatchConfig(patch=tile, batch=1, dead_leaves_prob=0.0 if images else 1.0, seed=7),
                           channels)
    return [sampler.batch(i)[0].transpose(0, 2, 3, 1) for i in range(count)]


def _reflected_to(image: np.ndarray, side: int) -> np.ndarray:
    """`image` with each axis shorter than `side` extended to it by reflection (np.pad's 'reflect')."""
    h, w = image.shape[:2]
    if h >= side and w >= side:
        return image
    return image[reflect_indices(0, max(h, side), h)][:, reflect_indices(0, max(w, side), w)]


def export_all(cfg: ExportConfig) -> dict[str, str]:
    """Write every format for the checkpoint; returns {kind: path}. QAT checkpoints give int8-qat."""
    model, ckpt = load_restorer(cfg.checkpoint)
    if cfg.tile % model.cfg.size_multiple:
        raise ValueError(f"tile {cfg.tile} must be a multiple of the model's size multiple {model.cfg.size_multiple}")
    contract = contract_for(ckpt, cfg)
    out = Path(cfg.out_dir)
    files: dict[str, str] = {}
    qat = bool(ckpt.get("qat"))

    set_quant_mode(model, "off")
    float_onnx = export_onnx(model, out / f"{cfg.name}_float.onnx", contract)
    files["onnx_float"] = str(out / f"{cfg.name}_float.onnx")
    if cfg.dynamic_onnx:
        export_onnx(model, out / f"{cfg.name}_float_dynamic.onnx", contract, dynamic=True)
        files["onnx_float_dynamic"] = str(out / f"{cfg.name}_float_dynamic.onnx")
    files["tflite_float"] = str(write_bytes(out / f"{cfg.name}_float.tflite", tflite_float(float_onnx, contract, cfg.upsample)))
    files["tflite_fp16"] = str(write_bytes(out / f"{cfg.name}_fp16.tflite", tflite_fp16(float_onnx, contract, cfg.upsample)))

    files["checkpoint"] = str(strip_checkpoint(cfg.checkpoint, out / f"{cfg.name}_{'qat' if qat else 'float'}.pt"))
    if qat:
        set_quant_mode(model, "quant")
        qdq = export_onnx(model, out / f"{cfg.name}_qdq.onnx", contract.replace(quantization="int8-qat"))
        files["onnx_qdq"] = str(out / f"{cfg.name}_qdq.onnx")
        int8 = tflite_int8_from_qdq(qdq, contract, cfg.io_dtype, cfg.upsample)
        files["tflite_int8"] = str(write_bytes(out / f"{cfg.name}_int8.tflite", int8))
        report = audit_scales(qdq, int8)
        log.info(report.summary())
        (out / f"{cfg.name}_scale_audit.json").write_text(json.dumps(report.__dict__ | {"ok": report.ok}, indent=1))
        if not report.ok:
            raise RuntimeError(report.summary())
    if cfg.ptq or not qat:
        tiles = representative_tiles(ckpt, cfg.tile, model.cfg.channels, cfg.ptq_data, cfg.ptq_samples)
        ptq = tflite_int8_ptq(float_onnx, contract, tiles, cfg.io_dtype, cfg.upsample)
        files["tflite_int8_ptq"] = str(write_bytes(out / f"{cfg.name}_int8_ptq.tflite", ptq))
    return files
