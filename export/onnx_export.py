"""Export a restorer to ONNX: float or QDQ, static tile shape (or dynamic size for float)."""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import onnx
import torch

from edge_runtime.contract import ModelContract
if __package__ == "export":  # a checkout: train/ is a top-level package beside export/
    from train.model import Restorer
    from train.quant import QConv2d, quant_mode
else:  # the installed wheel: edge_restore.export beside edge_restore.train
    from ..train.model import Restorer
    from ..train.quant import QConv2d, quant_mode

from .metadata import stamp_onnx

log = logging.getLogger(__name__)
OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "output"


def export_onnx(model: Restorer, path: str | Path, contract: ModelContract, dynamic: bool = False) -> onnx.ModelProto:
    """Write `model` as ONNX (QDQ if its quantization points are on) with the contract embedded.

    The input is NCHW float32 in [0, 1] with shape [1, C, tile, tile], or [1, C, H, W] with
    `dynamic=True` (float models only: edge accelerators need static shapes).
    """
    model = copy.deepcopy(model).eval()
    qdq = quant_mode(model) == "quant"
    if dynamic and qdq:
        raise ValueError("dynamic-size export is for float models; QDQ models keep the static tile shape")
    if qdq:
        for m in model.modules():  # constant weight scales -> plain Q/DQ pairs on the weights
            if isinstance(m, QConv2d):
                m.freeze_weights()
    side = contract.tile_size
    example = (torch.rand(1, contract.channels, side, side),)
    dynamic_shapes = None
    if dynamic:
        h, w = torch.export.Dim("height", min=contract.size_multiple), torch.export.Dim("width", min=contract.size_multiple)
        dynamic_shapes = {"x": {2: h, 3: w}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, example, dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes, verbose=False)
    proto = program.model_proto
    stamp_onnx(proto, contract.replace(layout="NCHW"))
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))
    log.info("wrote %s (%s)", path, "QDQ" if qdq else "float")
    return proto
