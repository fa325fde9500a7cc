"""Deployment exports (ONNX) that verify themselves against PyTorch, and int8 quantization.

The names are imported on first use: :mod:`lightact.export.session` (ONNX Runtime sessions and the
description an exported file carries) works without torch; export itself needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ExportParityError": "lightact.export.onnx",
    "ExportResult": "lightact.export.onnx",
    "check_all_models": "lightact.export.onnx",
    "export_model": "lightact.export.onnx",
    "export_onnx": "lightact.export.onnx",
    "ort_session": "lightact.export.session",
    "ExportError": "lightact.models.spec",
    "ExportTarget": "lightact.models.spec",
    "NotExportable": "lightact.models.spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lightact.export' has no attribute {name!r}")


__all__ = sorted(_LAZY)
