"""Deployment exports (ONNX) that verify themselves against PyTorch."""

from lightact.export.onnx import (
    ExportParityError,
    ExportResult,
    check_all_models,
    export_model,
    export_onnx,
    ort_session,
)
from lightact.models.spec import ExportError, ExportTarget, NotExportable

__all__ = [
    "ExportError",
    "ExportParityError",
    "ExportResult",
    "ExportTarget",
    "NotExportable",
    "check_all_models",
    "export_model",
    "export_onnx",
    "ort_session",
]
