"""Deployment exports (ONNX) that verify themselves against PyTorch."""

from lightact.export.onnx import (
    ExportParityError,
    ExportResult,
    check_all_models,
    export_model,
    export_onnx,
    ort_session,
)
from lightact.export.targets import ExportError, ExportTarget, NotExportable, export_target

__all__ = [
    "ExportError",
    "ExportParityError",
    "ExportResult",
    "ExportTarget",
    "NotExportable",
    "check_all_models",
    "export_model",
    "export_onnx",
    "export_target",
    "ort_session",
]
