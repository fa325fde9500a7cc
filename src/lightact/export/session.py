"""ONNX Runtime sessions and the lightact description an exported file carries; no torch needed.

An exported model keeps, in its ONNX ``metadata_props``, everything a deployment needs besides the
graph (:data:`METADATA_KEYS`): the class names, the input layout (input names, shapes, dynamic axes,
the call form) and the preprocessing (skeleton layout, channels, test transforms and resampling;
video/image sizes, mean and std), as JSON strings. ``lightact`` holds all of it in one document, the
description a checkpoint's ``model.safetensors`` holds plus an ``onnx`` section; the other keys are
its parts, for readers that are not lightact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["METADATA_KEYS", "onnx_description", "ort_session"]

METADATA_KEYS = ("lightact", "classes", "input_layout", "preprocessing")


def ort_session(path: str | Path | bytes, threads: int | None = None, device: str = "cpu"):
    """An ONNX Runtime session with ``threads`` intra-op threads, one inter-op thread, full graph
    optimisation; CUDA provider for ``device == "cuda"`` (an error if this onnxruntime lacks it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError("this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    source = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(source, options, providers=providers)


def onnx_description(session: Any, path: str | Path = "the ONNX file") -> dict[str, Any]:
    """The lightact description stored in an open session's model metadata; a ``ValueError`` naming
    ``path`` when there is none or it is not JSON (a file not exported by lightact, or by an older one)."""
    props = session.get_modelmeta().custom_metadata_map
    raw = props.get("lightact")
    if raw is None:
        raise ValueError(
            f"{path} holds no lightact description in its metadata: export it with `lightact export "
            "WORK_DIR` (a model exported from a registered name has no classes to predict)"
        )
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: its lightact metadata is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: its lightact metadata is not a mapping")
    return meta
