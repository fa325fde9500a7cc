"""ONNX export that verifies itself with ONNX Runtime.

The legacy TorchScript-tracing exporter is used (``torch.onnx.export(..., dynamo=False)``): the
``torch.export``-based exporter that torch >= 2.9 defaults to needs the ``onnxscript`` package, which
lightact does not depend on, and tracing handles every model here. A traced graph silently freezes
whatever Python values the forward computed from shapes, so an export is only trusted after ONNX
Runtime reproduces PyTorch's output on inputs of *different* sizes along every dynamic axis: the
maximum absolute difference must stay within the tolerance (1e-4), otherwise
:class:`ExportParityError` is raised with the measured difference and the file is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from lightact.models.spec import ExportError, ExportTarget, NotExportable

DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4


class ExportParityError(ExportError):
    """ONNX Runtime's output differs from PyTorch's by more than the tolerance (or it failed to run)."""

    def __init__(self, message: str, max_abs_diff: float | None = None) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


@dataclass
class ExportResult:
    path: str
    input_shapes_checked: list[list[int]]
    max_abs_diff: list[float]
    tolerance: float
    dynamic_axes: dict[str, str]  # dim -> name
    opset: int
    seconds: float
    tracer_warnings: int
    note: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def worst_diff(self) -> float:
        return max(self.max_abs_diff) if self.max_abs_diff else 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _quiet_fds(log_path: Path) -> Iterator[None]:
    """Send what C++ code writes to stdout/stderr (the exporter dumps whole graphs on errors) to
    ``log_path`` instead of the console."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_path, "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def ort_session(path: str | Path, threads: int | None = None, device: str = "cpu"):
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
            raise ExportError("this onnxruntime build has no CUDAExecutionProvider (install onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=providers)


def _as_tuple(inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def export_onnx(
    module: nn.Module,
    example: Tensor | Sequence[Tensor],
    path: str | Path,
    *,
    dynamic_axes: dict[int, str] | None = None,
    verify_inputs: Sequence[Tensor | Sequence[Tensor]] = (),
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
    input_name: str = "x",
    output_name: str = "logits",
    note: str = "",
) -> ExportResult:
    """Trace ``module`` on ``example`` into ``path`` and check ONNX Runtime against PyTorch on
    ``example`` and every input of ``verify_inputs``; raise :class:`ExportParityError` otherwise.

    ``dynamic_axes`` maps dimensions of the (single) input to names; the output's batch dimension is
    dynamic whenever the input's dimension 0 is.
    """
    import onnx

    module = module.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = _as_tuple(example)
    if len(example) != 1:
        raise NotExportable(f"export expects one input tensor, got {len(example)}")
    axes = dict(dynamic_axes or {})
    onnx_axes: dict[str, dict[int, str]] = {}
    if axes:
        onnx_axes[input_name] = axes
        if 0 in axes:
            onnx_axes[output_name] = {0: axes[0]}
    start = time.perf_counter()
    log_path = path.with_name(path.name + ".export.log")
    failure: Exception | None = None
    with warnings.catch_warnings(record=True) as caught, torch.no_grad(), _quiet_fds(log_path):
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                module,
                example,
                str(path),
                dynamo=False,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes=onnx_axes or None,
                opset_version=opset,
                do_constant_folding=True,
            )
        except Exception as err:
            failure = err
    if failure is not None:
        path.unlink(missing_ok=True)
        raise NotExportable(
            f"torch.onnx.export failed: {type(failure).__name__}: {_first_line(failure)} "
            f"(exporter output: {log_path})"
        ) from failure
    if log_path.stat().st_size == 0:
        log_path.unlink()
    tracer_warnings = sum(1 for w in caught if issubclass(w.category, torch.jit.TracerWarning))
    try:
        onnx.checker.check_model(str(path))
        session = ort_session(path)
    except Exception as err:
        path.unlink(missing_ok=True)
        raise ExportError(
            f"the exported graph does not load: {type(err).__name__}: {_first_line(err)}"
        ) from err

    checked: list[list[int]] = []
    diffs: list[float] = []
    for inputs in [example, *(_as_tuple(v) for v in verify_inputs)]:
        shape = list(inputs[0].shape)
        with torch.no_grad():
            expected = module(*inputs).float().cpu().numpy()
        try:
            got = session.run(None, {input_name: inputs[0].cpu().numpy()})[0]
        except Exception as err:
            path.unlink(missing_ok=True)
            raise ExportParityError(
                f"ONNX Runtime failed on input {shape} (the trace froze a size?): {_first_line(err)}"
            ) from err
        if got.shape != expected.shape:
            path.unlink(missing_ok=True)
            raise ExportParityError(
                f"output shape {list(got.shape)} != PyTorch's {list(expected.shape)} on {shape}"
            )
        diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        if not np.isfinite(diff) or diff > tolerance:
            path.unlink(missing_ok=True)
            raise ExportParityError(
                f"max |onnxruntime - torch| = {diff:.3g} > {tolerance:g} on input {shape}", max_abs_diff=diff
            )
        checked.append(shape)
        diffs.append(diff)
    return ExportResult(
        path=str(path),
        input_shapes_checked=checked,
        max_abs_diff=diffs,
        tolerance=tolerance,
        dynamic_axes={str(d): n for d, n in axes.items()},
        opset=opset,
        seconds=time.perf_counter() - start,
        tracer_warnings=tracer_warnings,
        note=note,
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def parse_dynamic(spec: str | None, target: ExportTarget) -> list[str]:
    """``"batch,frames"`` -> axis names, checked against the target; ``"all"`` = every axis it has."""
    if not spec:
        return []
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if names == ["all"]:
        return target.axis_names
    unknown = [n for n in names if n not in target.axis_names]
    if unknown:
        have = ", ".join(target.axis_names) or "none"
        why = f" ({target.note})" if target.note else ""
        raise NotExportable(f"this model has no dynamic axis {', '.join(unknown)}; it has: {have}{why}")
    return names


def export_target_onnx(
    target: ExportTarget,
    path: str | Path,
    dynamic: list[str],
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
) -> ExportResult:
    """Export a target with the named dynamic axes, verified on the canonical input and on one whose
    dynamic axes all take their alternate sizes (or a second random input when nothing is dynamic)."""
    axes = {d: n for d, n in target.axes.items() if n in dynamic}
    example = target.example()
    other = target.example(target.alternate_sizes(dynamic), seed=1)
    return export_onnx(
        target.module,
        example,
        path,
        dynamic_axes=axes,
        verify_inputs=[other],
        tolerance=tolerance,
        opset=opset,
        input_name=target.input_name,
        output_name=target.output_name,
        note=target.note,
    )


def load_source(source: str) -> tuple[nn.Module, dict]:
    """A registered model name (random weights, seed 0) or a checkpoint (work dir / .safetensors);
    ``meta["model"]`` is the registered name either way."""
    from lightact.models.registry import create_model, model_entry

    path = Path(source)
    if path.exists():
        from lightact.engine.checkpoint import load_model

        model, meta = load_model(path)
        return model.eval(), {**meta, "source": str(path)}
    model_entry(source)  # KeyError with the list of names when unknown
    torch.manual_seed(0)
    return create_model(source).eval(), {"model": source, "source": source}


def export_model(
    source: str,
    out: str | Path | None = None,
    dynamic: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
) -> ExportResult:
    """Export a registered model or a checkpoint to ONNX, verify it, and write ``<out>.json`` beside it
    (input layout, dynamic axes, parity figures, class names when the checkpoint has them)."""
    from lightact.models.registry import model_entry

    model, meta = load_source(source)
    target = model_entry(meta["model"]).export_target(model)
    names = parse_dynamic(dynamic, target)
    if out is None:
        src = Path(source)
        out = (src if src.is_dir() else src.parent) / "model.onnx" if src.exists() else Path(f"{source}.onnx")
    result = export_target_onnx(target, out, names, tolerance=tolerance, opset=opset)
    result.meta = {
        "model": meta.get("model"),
        "source": meta.get("source"),
        "input": {
            "name": target.input_name,
            "shape": list(target.canonical),
            "dynamic": {str(d): n for d, n in target.axes.items() if n in names},
        },
        "output": target.output_name,
        "classes": meta.get("classes") or meta.get("class_names"),
        "torch": torch.__version__,
    }
    Path(str(result.path) + ".json").write_text(json.dumps(result.as_dict(), indent=2))
    return result


def check_all_models(out_dir: str | Path, tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Export every registered model with all its dynamic axes; one row per model: exported with
    parity (worst difference) or not exportable (the reason)."""
    from lightact.models.registry import list_models

    rows = []
    for name in list_models():
        row: dict = {"model": name}
        try:
            result = export_model(name, Path(out_dir) / f"{name}.onnx", "all", tolerance=tolerance)
            row.update(
                status="exported",
                dynamic=",".join(result.meta["input"]["dynamic"].values()) or "-",
                checked=" & ".join("x".join(map(str, s)) for s in result.input_shapes_checked),
                max_abs_diff=result.worst_diff,
                seconds=round(result.seconds, 1),
                reason="",
            )
        except Exception as err:  # every failure is a row, never a crash of the whole check
            row.update(
                status="not exportable",
                dynamic="",
                checked="",
                max_abs_diff=None,
                seconds=None,
                reason=f"{type(err).__name__}: {_first_line(err)}",
            )
        rows.append(row)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export_check.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| model | status | dynamic axes | checked inputs | max abs diff | reason |",
        "|---|---|---|---|---:|---|",
    ]
    for r in rows:
        diff = f"{r['max_abs_diff']:.1e}" if r["max_abs_diff"] is not None else ""
        lines.append(
            f"| {r['model']} | {r['status']} | {r['dynamic']} | {r['checked']} | {diff} | {r['reason']} |"
        )
    (out / "export_check.md").write_text("\n".join(lines) + "\n")
    return rows
