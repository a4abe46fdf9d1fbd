"""edge_runtime: the thin board runtime of edge-restore (stdlib + numpy + Pillow at import time).

    from edge_runtime import load_model
    clean = load_model("models/denoise_int8.tflite").restore(noisy)

The TFLite interpreter (ai-edge-litert, tflite-runtime or TensorFlow) and onnxruntime are imported
only when a model is loaded; see edge_runtime.backends.
"""

from .api import FrameStream, RestorationModel, list_models, load_model, resolve_model
from .contract import ModelContract
from .errors import DeviceError, EdgeRestoreError, InputImageError, MissingInputError, ModelError, OutputWriteError

__all__ = [
    "DeviceError",
    "EdgeRestoreError",
    "FrameStream",
    "InputImageError",
    "MissingInputError",
    "ModelContract",
    "ModelError",
    "OutputWriteError",
    "RestorationModel",
    "list_models",
    "load_model",
    "resolve_model",
]
