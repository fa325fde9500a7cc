"""int8 models for CPUs: ONNX Runtime's dynamic quantization of an exported graph, measured.

``lightact export WORK_DIR --quantize int8`` writes ``model.int8.onnx`` beside ``model.onnx``:
``onnxruntime.quantization.quantize_dynamic`` stores the weights of the MatMul and Gemm nodes (where
STAR, ST-GCN's heads and the transformers spend their time) as int8 and quantizes their activations
per call, so no calibration data is needed. The cost is accuracy, so it is measured rather than
assumed: for a checkpoint whose work directory holds its ``config.yaml``, the fp32 and int8 graphs
classify the run's evaluation split (the embedded one for the quickstart) through the same test
pipeline as ``lightact eval``, and both top-1 figures are reported with the number of samples.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightact.export.session import ort_session
from lightact.models.spec import ExportTarget
from lightact.utils import atomic_write

__all__ = ["QUANTIZED_OPS", "int8_path", "quantize_export", "quantize_int8", "session_as_model"]

QUANTIZED_OPS = ("MatMul", "Gemm")


def int8_path(path: str | Path) -> Path:
    """``model.onnx`` -> ``model.int8.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.int8{path.suffix or '.onnx'}")


def quantize_int8(fp32: str | Path, out: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Dynamic int8 quantization of ``fp32``'s MatMul/Gemm weights into ``out`` (written atomically),
    with ``metadata`` (and a ``quantization`` entry) in its ``metadata_props``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "int8.onnx"
        quantize_dynamic(
            str(fp32), str(staged), weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS)
        )
        proto = onnx.load(str(staged))
    props = {**(metadata or {}), "quantization": f"int8 dynamic ({', '.join(QUANTIZED_OPS)} weights)"}
    kept = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        entry = kept.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(out, lambda tmp: onnx.save(proto, tmp))
    return out


def session_as_model(session, target: ExportTarget, exported_inputs: bool = False):
    """A callable taking the PyTorch model's inputs for a batch (with ``exported_inputs``: the
    exported form's own inputs) and returning its logits as a tensor, computed by an ONNX Runtime
    session of ``target``'s exported form."""
    names = target.input_names

    def forward(*inputs: torch.Tensor) -> torch.Tensor:
        calls = [inputs] if exported_inputs else target.calls(inputs)
        outs = [
            session.run(None, {n: t.cpu().numpy() for n, t in zip(names, call, strict=True)})[0]
            for call in calls
        ]
        return torch.from_numpy(np.concatenate(outs))

    return forward


def split_accuracy(source: str | Path, models: Mapping[str, Any]) -> dict[str, Any]:
    """Top-1 of each of ``models`` (name -> callable on the model's inputs) on the evaluation split
    of the run in work directory ``source``, through its test pipeline (test views averaged)."""
    from lightact.config import load_config
    from lightact.engine.checkpoint import read_meta
    from lightact.engine.datamodule import build_datamodule
    from lightact.engine.train import predict_probabilities
    from lightact.models.weights import resolve_weights_path

    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    cfg = load_config(folder / "config.yaml", [])
    meta = read_meta(resolve_weights_path(source))
    data = build_datamodule(cfg, meta["input_format"])
    data.prepare_data()
    loader = data.test_dataloader()
    out: dict[str, Any] = {"split": cfg.data.test_split or cfg.data.val_split, "samples": None}
    with torch.inference_mode():
        for name, model in models.items():
            probs, targets = predict_probabilities(model, loader, loader.dataset.num_samples)
            out[f"top1_{name}"] = float((probs.argmax(1) == targets).float().mean())
            out["samples"] = len(targets)
    return out


def quantize_export(result, target: ExportTarget, props: Mapping[str, str], source: str) -> dict[str, Any]:
    """Quantize the verified export in ``result`` (``model.int8.onnx`` beside it) and measure it:
    the max |int8 - torch| on the parity inputs, and (for a work directory with its config) the
    evaluation split's top-1 with torch, the fp32 graph and the int8 graph."""
    fp32_path = Path(result.path)
    out = quantize_int8(fp32_path, int8_path(fp32_path), props)
    fp32, int8 = ort_session(fp32_path), ort_session(out)
    diffs = []
    for inputs in (target.example(), target.example(target.alternate_sizes(target.axis_names), seed=1)):
        with torch.no_grad():
            expected = target.module(*inputs).numpy()
        got = session_as_model(int8, target, exported_inputs=True)(*inputs).numpy()
        diffs.append(float(np.abs(got - expected).max()))
    summary: dict[str, Any] = {
        "path": str(out),
        "method": f"onnxruntime quantize_dynamic, int8 weights of {', '.join(QUANTIZED_OPS)}",
        "max_abs_diff_vs_torch": max(diffs),
        "size_bytes": {"fp32": fp32_path.stat().st_size, "int8": out.stat().st_size},
    }
    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    if Path(source).exists() and (folder / "config.yaml").is_file():
        models = {
            "torch": target_module_model(target),
            "fp32": session_as_model(fp32, target),
            "int8": session_as_model(int8, target),
        }
        summary["accuracy"] = split_accuracy(source, models)
    else:
        summary["accuracy"] = None
        summary["accuracy_note"] = "not measured: a registered name or a checkpoint without its config.yaml"
    Path(f"{out}.json").write_text(json.dumps(summary, indent=2))
    return summary


def target_module_model(target: ExportTarget):
    """The PyTorch model behind ``target`` as a callable on the model's batch inputs."""
    module = target.module

    def forward(*inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat([module(*call) for call in target.calls(inputs)])

    return forward
