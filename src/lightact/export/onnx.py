"""ONNX export that verifies itself with ONNX Runtime and carries what a deployment needs.

Exporters. torch's current exporter (``torch.onnx.export(..., dynamo=True)``, built on
``torch.export``; it needs the ``onnxscript`` package) is tried first; where it fails, or its graph
does not reproduce PyTorch, the legacy TorchScript-tracing exporter is the fallback, and the result
says which one wrote the file and why the first was not used. Every warning either exporter raises
is kept in the result (the CLI prints them); what their C++ code prints goes to a log file beside
the output, kept only when the export fails.

Trust. A traced graph silently freezes whatever Python values the forward computed from shapes, so
an export is only trusted after ONNX Runtime reproduces PyTorch's output on inputs of *different*
sizes along every dynamic axis: the maximum absolute difference must stay within the tolerance
(1e-4), otherwise :class:`ExportParityError` is raised with the measured difference.

Nothing is lost. The graph is built and verified in memory, written beside the target under a
temporary name together with its JSON description, and only then renamed over the previous
``model.onnx`` and ``model.onnx.json``: a failed export (a bad opset, a parity miss) leaves the
files of the last good one untouched.

What it carries. A checkpoint's export stores its model description in the graph's
``metadata_props`` (:mod:`lightact.export.session`): class names, input layout and preprocessing,
so ``lightact predict --backend onnxruntime`` (and :class:`lightact.inference.Recognizer`) can run
from the ``.onnx`` file alone, without torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lightact.export.session import ort_session
from lightact.models.spec import ExportError, ExportTarget, NotExportable

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_TOLERANCE",
    "EXPORTERS",
    "ExportParityError",
    "ExportResult",
    "check_all_models",
    "export_model",
    "export_onnx",
    "export_target_onnx",
    "load_source",
    "onnx_path",
    "ort_session",
    "parse_dynamic",
]

DEFAULT_OPSET = 18  # the current exporter's own opset; the legacy one supports it too
DEFAULT_TOLERANCE = 1e-4
EXPORTERS = ("auto", "dynamo", "legacy")


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
    dynamic_axes: dict[str, str]  # dim of the first input -> name
    opset: int
    seconds: float
    tracer_warnings: int
    note: str = ""
    meta: dict = field(default_factory=dict)
    exporter: str = ""  # "dynamo" (torch's current exporter) or "legacy" (TorchScript tracing)
    fallback: str = ""  # why the current exporter was not used, when the legacy one wrote the file
    warnings: list[str] = field(default_factory=list)  # what the exporter warned about, once each
    quantized: dict | None = None  # the int8 model beside this one (export --quantize int8)

    @property
    def worst_diff(self) -> float:
        return max(self.max_abs_diff) if self.max_abs_diff else 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def onnx_path(out: str | Path) -> Path:
    """``out`` with the ``.onnx`` suffix added when it has another one or none."""
    out = Path(out)
    return out if out.suffix.lower() == ".onnx" else out.with_name(out.name + ".onnx")


@contextlib.contextmanager
def _quiet_fds(log_path: Path) -> Iterator[None]:
    """Send what C++ code and the exporters print to stdout/stderr (whole graphs on errors, progress
    lines) to ``log_path`` instead of the console."""
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


def _as_tuple(inputs: Tensor | Sequence[Tensor]) -> tuple[Tensor, ...]:
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _trace(
    exporter: str,
    module: nn.Module,
    example: tuple[Tensor, ...],
    names: list[str],
    output_name: str,
    axes: Mapping[str, Mapping[int, str]],
    opset: int,
):
    """The ONNX ``ModelProto`` of ``module`` on ``example`` from one exporter (raises its error)."""
    import onnx

    if exporter == "dynamo":
        from torch.export import Dim

        dims: dict[str, Any] = {}
        shapes = tuple(
            {d: dims.setdefault(n, Dim(n)) for d, n in axes[name].items()} if name in axes else None
            for name in names
        )
        program = torch.onnx.export(
            module,
            example,
            None,
            dynamo=True,
            input_names=names,
            output_names=[output_name],
            dynamic_shapes=shapes if dims else None,
            opset_version=opset,
            verbose=False,
        )
        return program.model_proto
    onnx_axes = {name: dict(a) for name, a in axes.items()}
    batch = [n for a in axes.values() for d, n in a.items() if d == 0]
    if batch:  # the output's rows follow the inputs' batch axis
        onnx_axes[output_name] = {0: batch[0]}
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        example,
        buffer,
        dynamo=False,
        input_names=names,
        output_names=[output_name],
        dynamic_axes=onnx_axes or None,
        opset_version=opset,
        do_constant_folding=True,
    )
    return onnx.load_model_from_string(buffer.getvalue())


def _parity(
    module: nn.Module,
    session,
    names: list[str],
    inputs_list: Sequence[tuple[Tensor, ...]],
    tolerance: float,
) -> tuple[list[list[int]], list[float]]:
    checked: list[list[int]] = []
    diffs: list[float] = []
    for inputs in inputs_list:
        shape = list(inputs[0].shape)
        with torch.no_grad():
            expected = module(*inputs).float().cpu().numpy()
        try:
            got = session.run(None, {n: t.cpu().numpy() for n, t in zip(names, inputs, strict=True)})[0]
        except Exception as err:
            raise ExportParityError(
                f"ONNX Runtime failed on input {shape} (the trace froze a size?): {_first_line(err)}"
            ) from err
        if got.shape != expected.shape:
            raise ExportParityError(
                f"output shape {list(got.shape)} != PyTorch's {list(expected.shape)} on {shape}"
            )
        diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
        if not np.isfinite(diff) or diff > tolerance:
            raise ExportParityError(
                f"max |onnxruntime - torch| = {diff:.3g} > {tolerance:g} on input {shape}", max_abs_diff=diff
            )
        checked.append(shape)
        diffs.append(diff)
    return checked, diffs


def _replace_together(files: Mapping[Path, bytes]) -> None:
    """Write every file under a temporary name in its folder, then rename them all into place:
    until the renames, the previous files are untouched."""
    written: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            written.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for tmp, path in written:
            os.replace(tmp, path)
    finally:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)


def _warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    lines: list[str] = []
    for w in caught:
        line = f"{w.category.__name__}: {_first_line(w.message)}"  # type: ignore[arg-type]
        if line not in lines:
            lines.append(line)
    return lines


def export_onnx(
    module: nn.Module,
    example: Tensor | Sequence[Tensor],
    path: str | Path,
    *,
    dynamic_axes: dict[int, str] | None = None,
    input_axes: Mapping[str, Mapping[int, str]] | None = None,
    input_names: Sequence[str] | None = None,
    verify_inputs: Sequence[Tensor | Sequence[Tensor]] = (),
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
    input_name: str = "x",
    output_name: str = "logits",
    note: str = "",
    exporter: str = "auto",
    metadata: Mapping[str, str] | None = None,
    description: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Export ``module`` on ``example`` to ``path`` and check ONNX Runtime against PyTorch on
    ``example`` and every input of ``verify_inputs``; raise :class:`ExportParityError` otherwise.

    ``input_names`` name the inputs (default ``input_name`` for one); ``input_axes`` maps input
    names to their dynamic dimensions, or ``dynamic_axes`` those of the first input. ``exporter``:
    ``"auto"`` (the current exporter, the legacy one where it fails), ``"dynamo"`` or ``"legacy"``.
    ``metadata`` goes into the graph's ``metadata_props``; with ``description``, ``<path>.json``
    (the result, with ``description`` as its ``meta``) is replaced together with the graph.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}: choose from {', '.join(EXPORTERS)}")
    module = module.eval()
    path = Path(path)
    example = _as_tuple(example)
    names = list(input_names or [input_name])
    if len(names) != len(example):
        raise NotExportable(f"{len(example)} example input(s) for {len(names)} input name(s) {names}")
    axes = {k: dict(v) for k, v in (input_axes or {}).items() if v}
    if input_axes is None and dynamic_axes:
        axes = {names[0]: dict(dynamic_axes)}
    verify = [example, *(_as_tuple(v) for v in verify_inputs)]
    start = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    log_path = path.with_name(path.name + ".export.log")
    failures: list[tuple[str, Exception]] = []
    caught: list[warnings.WarningMessage] = []
    for kind in ("dynamo", "legacy") if exporter == "auto" else (exporter,):
        with warnings.catch_warnings(record=True) as these, torch.no_grad(), _quiet_fds(log_path):
            warnings.simplefilter("always")
            try:
                proto = _trace(kind, module, example, names, output_name, axes, opset)
            except Exception as err:  # each exporter has its own many error types
                failures.append((kind, NotExportable(f"torch.onnx.export failed: {_describe(err)}")))
                proto = None
        caught += these
        if proto is None:
            continue
        try:
            _check_opset(proto, opset)
            checked, diffs = _verify(proto, module, names, verify, tolerance)
        except ExportError as err:
            failures.append((kind, err))
            continue
        break
    else:
        raise _combined_failure(failures, log_path)
    log_path.unlink(missing_ok=True)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    result = ExportResult(
        path=str(path),
        input_shapes_checked=checked,
        max_abs_diff=diffs,
        tolerance=tolerance,
        dynamic_axes={str(d): n for d, n in axes.get(names[0], {}).items()},
        opset=opset,
        seconds=time.perf_counter() - start,
        tracer_warnings=sum(1 for w in caught if issubclass(w.category, torch.jit.TracerWarning)),
        note=note,
        meta=dict(description or {}),
        exporter=kind,
        fallback="; ".join(f"{k}: {_first_line(e)}" for k, e in failures),
        warnings=_warning_lines(caught),
    )
    files = {path: proto.SerializeToString()}
    if description is not None:
        files[Path(f"{path}.json")] = json.dumps(result.as_dict(), indent=2).encode()
    _replace_together(files)
    return result


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {_first_line(err)}"


def _check_opset(proto, opset: int) -> None:
    """The current exporter converts its graph to the requested opset where it can and leaves it as
    it is (with a logged warning) where it cannot: a file must have the opset it was asked for."""
    got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise NotExportable(f"the graph has opset {got}, not the requested {opset} (no conversion exists)")


def _verify(proto, module: nn.Module, names: list[str], verify: list, tolerance: float):
    import onnx

    try:
        onnx.checker.check_model(proto)
        session = ort_session(proto.SerializeToString())
    except Exception as err:  # onnx and onnxruntime raise their own types
        raise ExportError(f"the exported graph does not load: {_describe(err)}") from err
    return _parity(module, session, names, verify, tolerance)


def _combined_failure(failures: list[tuple[str, Exception]], log_path: Path) -> ExportError:
    """The last exporter's error, its message naming every exporter's reason and the log."""
    kind, last = failures[-1]
    message = "; ".join(f"{k} exporter: {e}" for k, e in failures)
    if log_path.is_file() and log_path.stat().st_size:
        message += f" (exporter output: {log_path})"
    else:
        log_path.unlink(missing_ok=True)
    if isinstance(last, ExportParityError):
        return ExportParityError(message, last.max_abs_diff)
    return type(last)(message)


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
    *,
    exporter: str = "auto",
    metadata: Mapping[str, str] | None = None,
    description: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Export a target with the named dynamic axes, verified on the canonical input and on one whose
    dynamic axes all take their alternate sizes (or a second random input when nothing is dynamic)."""
    return export_onnx(
        target.module,
        target.example(),
        path,
        input_axes=target.input_axes(dynamic),
        input_names=target.input_names,
        verify_inputs=[target.example(target.alternate_sizes(dynamic), seed=1)],
        tolerance=tolerance,
        opset=opset,
        output_name=target.output_name,
        note=target.note,
        exporter=exporter,
        metadata=metadata,
        description=description,
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


def deployment_metadata(
    meta: Mapping[str, Any], target: ExportTarget, dynamic: list[str], source: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(description, metadata_props)`` of an export: the checkpoint's model description (class
    names, constructor arguments with the joint layout, input format, task and test pipeline) plus
    an ``onnx`` section (input names, shapes and dynamic axes, the output), and the props that carry
    it (:data:`lightact.export.session.METADATA_KEYS`)."""
    from lightact.engine.checkpoint import inference_pipeline

    description = {k: v for k, v in meta.items() if k != "source"}
    source_path = Path(source)
    if source_path.exists() and meta.get("modality", "skeleton") == "skeleton":
        # A skeleton checkpoint written before checkpoints recorded the test pipeline has it in
        # the config.yaml beside it: the exported file must carry it either way.
        pipeline = inference_pipeline(source_path, dict(meta))
        if pipeline is not None:
            description["data"] = pipeline
    example = target.example()
    axes = target.input_axes(dynamic)
    inputs = [
        {
            "name": name,
            "shape": list(t.shape),
            "dtype": str(t.dtype).removeprefix("torch."),
            "dynamic": {str(d): n for d, n in axes.get(name, {}).items()},
        }
        for name, t in zip(target.input_names, example, strict=True)
    ]
    description["onnx"] = {
        "inputs": inputs,
        "output": target.output_name,
        "form": type(target.module).__name__,
        "note": target.note,
    }
    kwargs = meta.get("kwargs") or {}
    preprocessing = {
        "modality": meta.get("modality", "skeleton"),
        "input_format": meta.get("input_format"),
        **{k: kwargs[k] for k in ("layout", "in_channels") if k in kwargs},
        **(description.get("data") or {}),
    }
    props = {
        "lightact": json.dumps(description),
        "classes": json.dumps(meta.get("classes")),
        "input_layout": json.dumps(description["onnx"]),
        "preprocessing": json.dumps(preprocessing),
    }
    return description, props


def export_model(
    source: str,
    out: str | Path | None = None,
    dynamic: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    opset: int = DEFAULT_OPSET,
    *,
    exporter: str = "auto",
    quantize: str | None = None,
) -> ExportResult:
    """Export a registered model or a checkpoint to ONNX (``.onnx`` added to ``out`` when missing)
    with the ``dynamic`` axes (comma-separated names; default every axis the model has, "none" for
    static shapes), verify it, store its description in the graph's metadata and in ``<out>.json``
    beside it (input layout, dynamic axes, parity figures, class names and preprocessing when the
    checkpoint has them). With ``quantize="int8"`` also write ``<stem>.int8.onnx``
    (:mod:`lightact.export.quantize`) and, for a checkpoint with its config, the accuracy on its
    evaluation split before and after."""
    from lightact.models.registry import model_entry

    if quantize not in (None, "int8"):
        raise ValueError(f"unknown quantization {quantize!r}: lightact quantizes to int8")
    model, meta = load_source(source)
    target = model_entry(meta["model"]).export_target(model)
    # Every axis the model can vary by default: a deployed predictor feeds other batch sizes and
    # lengths than the example's; "none" asks for static shapes.
    names = [] if dynamic == "none" else parse_dynamic(dynamic or "all", target)
    if out is None:
        src = Path(source)
        out = (src if src.is_dir() else src.parent) / "model.onnx" if src.exists() else Path(f"{source}.onnx")
    description, props = deployment_metadata(meta, target, names, str(meta.get("source", source)))
    sidecar = {
        **description,
        "source": meta.get("source"),
        "input": {
            "name": target.input_name,
            "shape": list(target.canonical),
            "dynamic": {str(d): n for d, n in target.axes.items() if n in names},
        },
        "torch": torch.__version__,
    }
    result = export_target_onnx(
        target,
        onnx_path(out),
        names,
        tolerance=tolerance,
        opset=opset,
        exporter=exporter,
        metadata=props,
        description=sidecar,
    )
    if quantize == "int8":
        from lightact.export.quantize import quantize_export

        result.quantized = quantize_export(result, target, props, source)
    return result


def check_all_models(out_dir: str | Path, tolerance: float = DEFAULT_TOLERANCE) -> list[dict]:
    """Export every registered model with all its dynamic axes; one row per model: exported with
    parity (worst difference, which exporter) or not exportable (the reason)."""
    from lightact.models.registry import list_models

    rows = []
    for name in list_models():
        row: dict = {"model": name}
        try:
            result = export_model(name, Path(out_dir) / f"{name}.onnx", "all", tolerance=tolerance)
            row.update(
                status="exported",
                exporter=result.exporter,
                dynamic=",".join(
                    sorted({n for i in result.meta["onnx"]["inputs"] for n in i["dynamic"].values()})
                )
                or "-",
                checked=" & ".join("x".join(map(str, s)) for s in result.input_shapes_checked),
                max_abs_diff=result.worst_diff,
                seconds=round(result.seconds, 1),
                reason=result.fallback,
            )
        except Exception as err:  # every failure is a row, never a crash of the whole check
            row.update(
                status="not exportable",
                exporter="",
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
        "| model | status | exporter | dynamic axes | checked inputs | max abs diff | reason |",
        "|---|---|---|---|---|---:|---|",
    ]
    for r in rows:
        diff = f"{r['max_abs_diff']:.1e}" if r["max_abs_diff"] is not None else ""
        lines.append(
            f"| {r['model']} | {r['status']} | {r['exporter']} | {r['dynamic']} | {r['checked']} | {diff} "
            f"| {r['reason']} |"
        )
    (out / "export_check.md").write_text("\n".join(lines) + "\n")
    return rows
