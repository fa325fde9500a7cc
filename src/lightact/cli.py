"""The ``lightact`` command line: each subcommand is a thin call into the library.

Commands by what they do: running a model (``train``, ``eval``, ``predict``, ``serve``); models themselves
(``models``, ``configs``, ``bench``, ``export``); turning videos into training inputs (``pose``,
``extract-features``); datasets (``data validate|check-images|synth|convert``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from lightact.errors import DataError, UsageError, check_writable_dir, user_message


class _Commands(TyperGroup):
    """The command group. A user's mistake (a bad option, config key or input file, a full disk)
    ends in one line on stderr naming the problem, the file and the sample or key, exit 2 for usage
    and configuration, 1 for data (:func:`lightact.errors.user_message`); ``--debug`` anywhere on
    the line (or LIGHTACT_DEBUG=1) shows the traceback instead. Here rather than in :func:`main`,
    so that tests invoking ``app`` see what users see."""

    def main(self, args: list[str] | None = None, *rest: Any, **kwargs: Any) -> Any:
        import os
        import sys

        from lightact.errors import user_message

        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args or os.environ.get("LIGHTACT_DEBUG", "") not in ("", "0")
        try:
            return super().main([a for a in args if a != "--debug"], *rest, **kwargs)
        except Exception as err:
            if debug:
                raise
            known = user_message(err)
            if known is None:  # a bug: still one line, with the way to the traceback
                first = f"{type(err).__name__}: {str(err).strip() or repr(err)}".splitlines()[0]
                line, code = f"lightact: internal error: {first} (rerun with --debug for the traceback)", 1
            else:
                line, code = known
            print(line, file=sys.stderr, flush=True)
            sys.exit(code)


# Help and start-up: this module imports only typer and rich; every command imports what it uses
# when it runs, so `lightact -h` and `lightact train -h` never load torch or Lightning.
APP_SETTINGS = {
    "no_args_is_help": True,
    # Help text is printed as written: brackets ([CONFIG], [pose]) are not rich markup.
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
app = typer.Typer(
    cls=_Commands,
    help="Efficient transformer-based human action recognition. Add --debug to any command to see "
    "the traceback of an error.",
    pretty_exceptions_enable=False,
    **APP_SETTINGS,
)
data_app = typer.Typer(help="Generate, convert and check datasets.", **APP_SETTINGS)
synth_app = typer.Typer(help="Generate the embedded synthetic datasets.", **APP_SETTINGS)
convert_app = typer.Typer(help="Convert datasets into the standard skeleton pickle.", **APP_SETTINGS)
weights_app = typer.Typer(help="Check weights files from lightact and the ecosystem.", **APP_SETTINGS)
app.add_typer(data_app, name="data")
data_app.add_typer(synth_app, name="synth")
data_app.add_typer(convert_app, name="convert")
app.add_typer(weights_app, name="weights")
# Everything is printed literally (markup=False): class names, paths and messages may hold brackets
# ("pip install 'lightact[pose]'"), which rich markup would swallow. Long lines stay whole
# (soft_wrap), so paths can be copied.
console = Console(soft_wrap=True, markup=False, highlight=False)
errors = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)

ConfigArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="CONFIG|NAME",
        help="Experiment YAML, or the name of a shipped config (lightact configs); none = the quickstart.",
    ),
]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", metavar="KEY=VALUE", help="Dotted override, e.g. model.dim=128.")
]
# Commands that take key=value words beyond --set, or (bench) parse their own arguments.
OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}


def fail(message: object, code: int = 2) -> typer.Exit:
    """Print ``message`` on stderr, literally; returns the exit for the caller to raise. An
    exception is read as :func:`lightact.errors.user_message` reads it (its line and exit status:
    2 for usage and configuration, 1 for data), so a command that catches one ends as if it had
    not."""
    if isinstance(message, BaseException):
        known = user_message(message)
        if known is not None:
            message, code = known
    errors.print(str(message), style="red")
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from lightact import __version__

        console.print(f"lightact {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Efficient transformer-based human action recognition: train, evaluate, benchmark, export and
    run action recognisers on skeletons, video clips, still images and long videos."""


def _is_override(word: Path | None) -> bool:
    """Whether a word typer read as CONFIG is a ``key.path=value`` override (values may be paths)."""
    if word is None or word.exists():
        return False
    key, sep, _ = str(word).partition("=")
    return bool(sep) and "/" not in key


def _config(config: Path | None, overrides: list[str] | None, extra: list[str] = ()):
    """Load CONFIG (a file or a shipped config's name) with its overrides. ``--set a=1 b=2``
    leaves ``b=2`` to typer as an extra argument (or as CONFIG when no file is given), so every
    ``key=value`` word counts as an override."""
    from lightact.config import ConfigError, load_config

    overrides = [*(overrides or []), *extra]
    if _is_override(config):
        config, overrides = None, [str(config), *overrides]
    stray = [o for o in overrides if "=" not in o]
    if stray:
        raise ConfigError(f"unexpected argument(s) {stray}: overrides are key.path=value")
    return load_config(config, overrides)


def _print_metrics(metrics: dict) -> None:
    title = f"{metrics['num_samples']} test samples, {metrics.get('num_clips', 1)} view(s) each"
    if metrics.get("task") == "regression":
        table = Table(title=title)
        for column in ("target", "MSE", "RMSE", "MAE", "R²"):
            table.add_column(column, justify="left" if column == "target" else "right")
        for row in metrics["per_target"]:
            r2 = "n/a" if row["r2"] is None else f"{row['r2']:.3f}"
            table.add_row(row["target"], f"{row['mse']:.4g}", f"{row['rmse']:.4g}", f"{row['mae']:.4g}", r2)
        console.print(table)
        console.print(f"MSE {metrics['mse']:.4g}  MAE {metrics['mae']:.4g}")
        return
    table = Table(title=title)
    for column in ("class", "support", "accuracy"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in metrics["per_class"]:
        table.add_row(row["class"], str(row["support"]), f"{row['accuracy']:.1%}")
    console.print(table)
    top5 = next(k for k in metrics if k.startswith("top") and k != "top1")
    console.print(
        f"top-1 {metrics['top1']:.2%}  {top5} {metrics[top5]:.2%}  "
        f"mean class {metrics['mean_class_accuracy']:.2%}  mAP {metrics['mAP']:.2%}"
    )


def _print_folds(summary: dict) -> None:
    table = Table(title=f"{summary['folds']}-fold cross-validation")
    for column in ("fold", "test samples", "top-1", "mean class"):
        table.add_column(column, justify="right")
    for row in summary["per_fold"]:
        table.add_row(
            str(row["fold"]),
            str(row["num_samples"]),
            f"{row['top1']:.2%}",
            f"{row['mean_class_accuracy']:.2%}",
        )
    top1, mean_class = summary["top1"], summary["mean_class_accuracy"]
    table.add_row(
        "mean ± std",
        "",
        f"{top1['mean']:.2%} ± {top1['std']:.2%}",
        f"{mean_class['mean']:.2%} ± {mean_class['std']:.2%}",
    )
    console.print(table)
    console.print(f"pooled top-1 over all folds' test samples: {summary['pooled_top1']:.2%}")


# ---------------------------------------------------------------------------------------------------
# running a model: train, evaluate, predict


@app.command(context_settings=OVERRIDES)
def train(
    ctx: typer.Context,
    config: ConfigArg = None,
    overrides: SetOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in the config's work_dir.")] = False,
    folds: Annotated[
        int | None, typer.Option(help="K-fold cross-validation over the data's fold splits (sets folds).")
    ] = None,
) -> None:
    """Train a model, then evaluate it; writes weights, config, logs and reports to the work dir."""
    import json

    cfg = _config(config, [*(overrides or []), *([f"folds={folds}"] if folds else [])], ctx.args)
    from lightact.engine.train import train as run_training

    if cfg.folds:
        from lightact.engine.folds import train_folds

        _print_folds(train_folds(cfg, resume=resume))
        console.print(f"work dir: {cfg.resolved_work_dir}")
        return
    work_dir = run_training(cfg, resume=resume, echo=console.print)
    metrics_file = work_dir / "metrics.json"
    if metrics_file.is_file():
        _print_metrics(json.loads(metrics_file.read_text()))
    console.print(f"work dir: {work_dir}")


def _evaluation_inputs(work_dir: Path, config: Path | None, checkpoint: Path | None) -> tuple[Path, Path]:
    """(experiment config, checkpoint) from ``eval``'s arguments: ``WORK_DIR [CONFIG]``, or the
    earlier ``CONFIG --checkpoint WORK_DIR``; without a config, the work dir's config.yaml."""
    from lightact.config import CONFIG_FILE_NAME

    if checkpoint is not None:
        if config is not None:
            raise fail("with --checkpoint, the first argument is the config: give no second one")
        work_dir, config = checkpoint, work_dir
    if not work_dir.exists():
        raise fail(
            f"{work_dir} does not exist: give the work dir of a trained model (or its model.safetensors)"
        )
    if config is None:
        config = (work_dir if work_dir.is_dir() else work_dir.parent) / CONFIG_FILE_NAME
        if not config.is_file():
            raise fail(
                f"{work_dir} holds no {CONFIG_FILE_NAME}: give the experiment's config too "
                f"(lightact eval {work_dir} CONFIG)"
            )
    return config, work_dir


@app.command("eval", context_settings=OVERRIDES)
def evaluate(
    ctx: typer.Context,
    work_dir: Annotated[
        Path,
        typer.Argument(metavar="WORK_DIR", help="A trained model's work dir, or its model.safetensors."),
    ],
    config: Annotated[
        Path | None,
        typer.Argument(
            metavar="CONFIG", help="Experiment YAML or shipped name; default: WORK_DIR/config.yaml."
        ),
    ] = None,
    config_option: Annotated[
        Path | None, typer.Option("--config", help="Same as CONFIG: the experiment to evaluate on.")
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="The earlier form, eval CONFIG --checkpoint WORK_DIR: the work dir or .safetensors."
        ),
    ] = None,
    overrides: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="Where reports go; default beside the checkpoint.")] = None,
    dump: Annotated[
        Path | None,
        typer.Option(
            help="CSV of every test sample: id, label, prediction and its top-k classes with scores."
        ),
    ] = None,
) -> None:
    """Top-1, top-5 and mean-class accuracy (or regression errors), per-class table and confusion
    matrix PNG of a trained model on its test split; reads the work dir's config.yaml."""
    extra = list(ctx.args)
    if _is_override(config):
        extra.insert(0, str(config))  # typer reads the first key=value word as CONFIG
        config = None
    if config_option is not None:
        if config is not None:
            raise fail("give the config once: as CONFIG or as --config")
        config = config_option
    config, source = _evaluation_inputs(work_dir, config, checkpoint)
    cfg = _config(config, overrides, extra)
    from lightact.engine.train import evaluate as run_evaluation

    metrics = run_evaluation(cfg, source, out_dir=out, progress=True, dump=dump)
    _print_metrics(metrics)
    if dump is not None:
        console.print(f"per-sample predictions: {dump}")


@app.command()
def predict(
    checkpoint: Annotated[Path, typer.Argument(help="Work dir or model.safetensors of a trained model.")],
    input: Annotated[
        Path | None, typer.Argument(help="Video, image, skeleton pickle/npy, or a folder of them.")
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(help="Window length: frames (skeletons, clips) or seconds (long videos)."),
    ] = None,
    stride: Annotated[
        int | None, typer.Option(help="Between window starts, same unit; default window/2.")
    ] = None,
    topk: Annotated[int, typer.Option(help="Classes shown per window.")] = 5,
    out: Annotated[Path, typer.Option(help="Folder for <name>.json and <name>_timeline.png.")] = Path(
        "predictions"
    ),
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    show_windows: Annotated[bool, typer.Option("--windows", help="Print every window's top-k.")] = False,
    backend: Annotated[
        str,
        typer.Option(
            help="torch, or onnxruntime: the work dir's model.onnx (lightact export) or a .onnx file."
        ),
    ] = "torch",
    render: Annotated[
        Path | None,
        typer.Option(help="Also write the input with skeletons, ids and actions drawn on it (.mp4)."),
    ] = None,
    pose_fps: Annotated[
        float | None,
        typer.Option(help="Skeleton models on video: poses per second (default 10; 0 = every frame)."),
    ] = None,
    persons: Annotated[
        str,
        typer.Option(help="Skeleton models: auto, each (every person on their own) or together."),
    ] = "auto",
    live: Annotated[
        str | None,
        typer.Option(help="Classify a live source: /dev/video0 or a camera index, a stream URL, or a file."),
    ] = None,
    seconds: Annotated[
        float | None, typer.Option(help="With --live: stop after this many seconds (default: Ctrl-C).")
    ] = None,
) -> None:
    """Classify inputs with a trained model, in windows over time: videos (through pose for skeleton
    models, as clips for video models, as features for long-video models), skeleton files, images.
    With --live, a camera, stream or file as it plays (skeleton models; Ctrl-C ends it)."""
    import json

    from lightact.inference import Recognizer, predict_path

    if (input is None) == (live is None):
        raise fail("give an INPUT or --live SOURCE (one of them)")
    check_writable_dir(out, "--out")
    recognizer = Recognizer.from_checkpoint(checkpoint, device, backend=backend)
    if recognizer.modality == "skeleton":
        recognizer.set_video_options(pose_fps=pose_fps, person_mode=persons)
    elif pose_fps is not None or persons != "auto" or live is not None:
        raise UsageError(
            f"--pose-fps, --persons and --live need a skeleton model; this is a {recognizer.modality} one"
        )
    if live is not None:
        from lightact.inference.live import run_live

        summary = run_live(
            recognizer, live, window=window, stride=stride, topk=topk, render=render, out_dir=out,
            seconds=seconds, echo=console.print,
        )  # fmt: skip
        console.print(json.dumps(summary, indent=2))
        return
    predictions = predict_path(
        recognizer, input, window, stride, topk, out, device=device, skip_errors=True, render=render
    )
    for prediction in predictions:
        console.print(prediction.table(windows=show_windows))
    console.print(f"JSON and timeline PNGs in {out}")
    if render is not None:
        console.print(f"rendered: {render}")


@app.command()
def serve(
    work_dirs: Annotated[
        list[Path], typer.Argument(metavar="WORK_DIR", help="Trained models' work dirs to offer.")
    ],
    host: Annotated[str, typer.Option(help="Address to listen on; other than loopback, with a warning.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Predictions run at once (threads).")] = 2,
    queue: Annotated[int, typer.Option(help="Requests waiting for a worker; more are answered 429.")] = 4,
    max_upload_mb: Annotated[float, typer.Option(help="Largest request body (413 above).")] = 50.0,
    max_video_s: Annotated[float, typer.Option(help="Longest video taken (413 above).")] = 120.0,
    timeout: Annotated[float, typer.Option(help="Seconds per request, queue included (504 after).")] = 120.0,
    keep: Annotated[float, typer.Option(help="Seconds rendered videos and timelines stay downloadable.")] = (
        600.0
    ),
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    backend: Annotated[str, typer.Option(help="torch, or onnxruntime: each work dir's model.onnx.")] = (
        "torch"
    ),
    threads: Annotated[int, typer.Option(help="torch intra-op threads.")] = 1,
) -> None:
    """A web page and an HTTP API (POST /predict, GET /models, GET /health, /docs) for trained
    models: upload a video, image or skeleton file, see the rendered overlay, timeline and top-k."""
    from lightact.serve import serve as run_server

    try:
        run_server(
            work_dirs, host, port, device=device, backend=backend, threads=threads, echo=console.print,
            warn=lambda m: errors.print(m, style="yellow"),
            workers=workers, queue=queue, max_upload_mb=max_upload_mb, max_video_s=max_video_s,
            timeout_s=timeout, keep_s=keep,
        )  # fmt: skip
    except (ImportError, ValueError, OSError) as err:
        raise fail(err) from None


# ---------------------------------------------------------------------------------------------------
# models: list, benchmark, export, inspect weights


@app.command()
def models(
    modality: Annotated[str | None, typer.Option(help="skeleton, video, image or longvideo.")] = None,
    external: Annotated[
        bool, typer.Option("--external", help="Also list every timm and torchvision name (slower).")
    ] = False,
) -> None:
    """List the models: lightact's, and the timm and torchvision families with how to name them."""
    from lightact.config import DATA_KINDS

    if modality is not None and modality not in DATA_KINDS:
        raise fail(f"unknown modality {modality!r}: choose one of {', '.join(DATA_KINDS)}")
    from lightact.models.registry import EXTERNAL_FAMILIES, external_names, list_models, model_entry

    table = Table()
    for column in ("name", "modality", "input", "description"):
        table.add_column(column)
    for name in list_models(modality):
        entry = model_entry(name)
        table.add_row(name, entry.modality, entry.input_format, entry.description)
    for family in EXTERNAL_FAMILIES:
        if modality in (None, family.spec.modality):
            table.add_row(family.pattern, family.spec.modality, family.spec.input_format, family.description)
    console.print(table)
    if external:
        for family in EXTERNAL_FAMILIES:
            if modality in (None, family.spec.modality):
                names = external_names(family.prefix)
                console.print(f"{family.pattern}: {len(names)} models")
                console.print("  " + " ".join(names))


@app.command("configs")
def configs_command() -> None:
    """List the configs that ship with lightact, one line each: train one by name
    (lightact train pst_xs_synth); layouts/ names work as data.layout."""
    from lightact.configs import catalogue

    rows = catalogue()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        console.print(f"{name:<{width}}  {description}")


@app.command(context_settings=OVERRIDES, add_help_option=False)
def bench(ctx: typer.Context) -> None:
    """Benchmark models x backends: params, FLOPs/MACs, latency, throughput, memory (bench --help)."""
    from lightact.bench.command import run as run_bench_command

    raise typer.Exit(run_bench_command(ctx.args, echo=console.print))


@app.command("export")
def export(
    source: Annotated[
        str | None, typer.Argument(help="Registered model name, or a checkpoint (work dir / .safetensors).")
    ] = None,
    format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    dynamic: Annotated[
        str | None,
        typer.Option(
            help="Dynamic axes, comma-separated (batch, frames, persons); default all, 'none' static."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="File to write (.onnx added when missing); with --all, a folder.")
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    tolerance: Annotated[float, typer.Option(help="Max |onnxruntime - torch| allowed.")] = 1e-4,
    all_models: Annotated[
        bool, typer.Option("--all", help="Try every registered model; list exportable or not, and why.")
    ] = False,
    exporter: Annotated[
        str,
        typer.Option(help="auto (torch's current exporter, the legacy one where it fails), dynamo, legacy."),
    ] = "auto",
    quantize: Annotated[
        str | None,
        typer.Option(help="int8: also write <name>.int8.onnx (dynamic quantization) and its accuracy."),
    ] = None,
) -> None:
    """Export to ONNX and verify with ONNX Runtime on two input sizes; fails (exit 1) on any mismatch.
    A checkpoint's export carries its class names, input layout and preprocessing in the graph's
    metadata: `lightact predict --backend onnxruntime` runs from it without torch."""
    from lightact.export import ExportError, check_all_models, export_model

    if format != "onnx":
        raise fail(f"unsupported format {format!r}: only onnx")
    if out is not None:
        check_writable_dir(out if all_models else out.parent, "--out")
    if all_models:
        rows = check_all_models(out or Path("onnx_export_check"), tolerance=tolerance)
        table = Table(title=f"ONNX export of every registered model (tolerance {tolerance:g})")
        for column in (
            "model",
            "status",
            "exporter",
            "dynamic axes",
            "checked inputs",
            "max |diff|",
            "reason",
        ):
            table.add_column(column)
        for row in rows:
            diff = f"{row['max_abs_diff']:.1e}" if row["max_abs_diff"] is not None else ""
            table.add_row(
                row["model"],
                row["status"],
                row["exporter"],
                row["dynamic"],
                row["checked"],
                diff,
                row["reason"],
            )
        console.print(table)
        return
    if source is None:
        raise fail("give a model name or checkpoint, or --all")
    try:
        result = export_model(
            source, out, dynamic, tolerance=tolerance, opset=opset, exporter=exporter, quantize=quantize
        )
    except ExportError as err:
        raise DataError(f"export of {source} failed: {err}") from None
    _print_export(result)


def _print_export(result) -> None:
    """What an export wrote, which exporter, its parity, warnings and the int8 model's figures."""
    shapes = " and ".join("x".join(map(str, s)) for s in result.input_shapes_checked)
    axes = sorted({n for i in result.meta["onnx"]["inputs"] for n in i["dynamic"].values()})
    which = "torch's current exporter (dynamo)" if result.exporter == "dynamo" else "the legacy exporter"
    console.print(
        f"wrote {result.path} with {which} (opset {result.opset}, dynamic: {', '.join(axes) or 'none'}); "
        f"onnxruntime matches torch on {shapes}: max |diff| {result.worst_diff:.1e} <= {result.tolerance:g}"
    )
    if result.fallback:
        console.print(f"the current exporter was not used: {result.fallback}")
    if result.meta.get("classes"):
        console.print(f"metadata: {len(result.meta['classes'])} class names, input layout and preprocessing")
    for line in result.warnings:
        console.print(f"exporter warning: {line}")
    if result.note:
        console.print(result.note)
    q = result.quantized
    if q:
        console.print(
            f"wrote {q['path']} ({q['method']}; max |int8 - torch| {q['max_abs_diff_vs_torch']:.2g})"
        )
        acc = q.get("accuracy")
        if acc:
            console.print(
                f"top-1 on {acc['split']} ({acc['samples']} samples): torch {acc['top1_torch']:.2%}, "
                f"fp32 onnx {acc['top1_fp32']:.2%}, int8 {acc['top1_int8']:.2%}"
            )
        else:
            console.print(f"accuracy {q.get('accuracy_note', 'not measured')}")


@weights_app.command("inspect")
def weights_inspect(
    file: Annotated[Path, typer.Argument(help="Weights file (safetensors or torch) or a work dir.")],
    model: Annotated[
        str | None, typer.Option(help="A registered model to check the file against in detail.")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Model argument for --model, e.g. bias_index=official.")
    ] = None,
    entry: Annotated[str | None, typer.Option(help="Checkpoint entry to read, e.g. state_dict_ema.")] = None,
) -> None:
    """Format, tensors, layout, the registered models the file fits, and for --model what would be
    converted, loaded and left at initial values. Builds no training run."""
    import yaml

    from lightact.models.weights import inspect_weights

    arguments = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise fail(f"--set {item!r}: expected name=value")
        arguments[key] = yaml.safe_load(value)
    try:
        lines = inspect_weights(file, model, arguments, entry)
    except (ValueError, KeyError, FileNotFoundError, TypeError) as err:
        raise fail(err.args[0] if isinstance(err, KeyError) else err) from None
    for line in lines:
        console.print(line)


# ---------------------------------------------------------------------------------------------------
# from videos to training inputs: poses for skeleton models, features for long-video models


@app.command()
def pose(
    inputs: Annotated[
        list[Path], typer.Argument(help="Videos, folders of videos, or video lists (path label).")
    ],
    out: Annotated[Path, typer.Option(help="Skeleton pickle to write (MediaPipe-33, 2D + 3D + scores).")],
    labels: Annotated[
        Path | None, typer.Option(help="Class names, one a line, stored in the pickle.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel videos; default all cores.")] = None,
    max_persons: Annotated[int, typer.Option(help="People tracked per video.")] = 2,
    max_side: Annotated[
        int, typer.Option(help="Frames are downscaled to this longer side before pose.")
    ] = 640,
) -> None:
    """MediaPipe Pose on every frame of every video; an interrupted run resumes where it stopped."""
    from lightact.data.skeleton.pose import run_pose

    stats = run_pose(inputs, out, labels=labels, workers=workers, max_persons=max_persons, max_side=max_side)
    table = Table(title=f"{stats['videos']} video(s), {stats['frames']} frames, {stats['fps']:.1f} frames/s")
    for column in ("video", "frames", "person found", "second person", "fps"):
        table.add_column(column, justify="left" if column == "video" else "right")
    for video, row in stats["per_video"].items():
        fps = "resumed" if row["resumed"] else f"{row['fps']:.1f}"
        table.add_row(
            Path(video).name,
            str(row["frames"]),
            f"{row['person_share']:.0%}",
            f"{row['second_person_share']:.0%}",
            fps,
        )
    console.print(table)
    for failure in stats["failed"]:
        errors.print(f"failed: {failure['video']}: {failure['error']}", style="red")
    if not stats["written"]:
        raise DataError(f"every video failed, so {out} was not written (an earlier one is kept)")
    console.print(f"wrote {out}")
    if stats["failed"]:
        raise typer.Exit(1)


@app.command("extract-features")
def extract_features_command(
    videos: Annotated[
        list[Path], typer.Argument(help="Videos, folders of videos, or lists (.txt/.csv, path first).")
    ],
    out: Annotated[Path, typer.Option(help="Feature store: one .safetensors file per video.")],
    frame_encoder: Annotated[
        str, typer.Option(help="Static-stream image model, timm/<name> (random unless --frame-weights).")
    ] = "timm/resnet10t",
    fps: Annotated[float, typer.Option(help="Frames per second sampled for the static stream.")] = 1.0,
    clip_encoder: Annotated[
        str, typer.Option(help="Temporal-stream video model: tv/<name> (e.g. tv/r3d_18) or a lightact one.")
    ] = "clip3d_tiny",
    frame_weights: Annotated[Path | None, typer.Option(help="Weights for the frame encoder.")] = None,
    clip_weights: Annotated[Path | None, typer.Option(help="Weights for the clip encoder.")] = None,
    frame_size: Annotated[
        int, typer.Option(help="Frame encoder input side (shorter side, centre crop).")
    ] = 224,
    clip_size: Annotated[int, typer.Option(help="Clip encoder input side.")] = 112,
    clip_len: Annotated[int, typer.Option(help="Frames per clip.")] = 8,
    clip_fps: Annotated[float, typer.Option(help="Frames per second inside a clip.")] = 8.0,
    clip_stride: Annotated[float, typer.Option(help="Seconds between clip starts.")] = 2.0,
    batch_size: Annotated[int, typer.Option(help="Frames per frame-encoder batch.")] = 32,
    clip_batch_size: Annotated[int, typer.Option(help="Clips per clip-encoder batch.")] = 8,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Cache static-frame and clip features of long videos; resumable, sharded under torchrun."""
    from lightact.features.extract import ExtractionSettings, extract_features

    # The options named after the settings' fields are the settings (tests/test_features.py).
    options = {name: value for name, value in locals().items() if name in ExtractionSettings.model_fields}
    try:
        settings = ExtractionSettings.from_values(**options)
    except ValueError as err:
        raise UsageError(str(err)) from None
    check_writable_dir(out, "--out")
    summary = extract_features(
        videos,
        out,
        settings,
        device=device,
        batch_size=batch_size,
        clip_batch_size=clip_batch_size,
        progress=True,
    )
    console.print(
        f"rank {summary['rank']}/{summary['world_size']}: {summary['shard']} of {summary['videos']} "
        f"video(s), "
        f"{summary['extracted']} extracted ({summary['frames']} frames in {summary['seconds']:.1f} s), "
        f"{summary['skipped']} already done, {len(summary['failed'])} failed -> {out}"
    )
    for failure in summary["failed"]:
        errors.print(f"failed: {failure['video']}: {failure['error']}", style="red")
    if summary["failed"]:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------------
# datasets: check, generate, convert


@data_app.command("import")
def import_data(
    spec: Annotated[Path, typer.Argument(help="Import spec YAML (configs/datasets/ has examples).")],
    out: Annotated[Path, typer.Option(help="Annotation pickle to write.")],
    root: Annotated[Path | None, typer.Option(help="Dataset folder; replaces the spec's root.")] = None,
    skip_errors: Annotated[
        bool, typer.Option(help="Leave out files that do not match the spec (listed) instead of failing.")
    ] = False,
) -> None:
    """Per-sequence text/CSV/.npy skeleton files -> annotation pickle with the spec's splits."""
    from lightact.data.skeleton.importer import import_dataset

    report = import_dataset(spec, out, root=root, skip_errors=skip_errors, progress=True)
    for item in report.dropped:
        console.print(f"dropped {item['sample']} ({item['file']}): {item['reason']}")
    for item in report.failed:
        errors.print(f"failed: {item['error']}", style="red")
    sizes = ", ".join(f"{k}: {v}" for k, v in report.splits.items())
    console.print(
        f"imported {report.samples} of {report.files_found} files ({len(report.dropped)} dropped, "
        f"{len(report.failed)} failed"
        + (f", {report.excluded} not in the include list" if report.excluded else "")
        + f"), {report.classes} classes ({sizes}) in {report.seconds:.1f} s "
        f"-> {out}"
    )


@data_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="Skeleton annotation pickle.")],
    num_classes: Annotated[int | None, typer.Option(help="Labels must lie below this.")] = None,
) -> None:
    """Check a skeleton pickle against the schema; exits 1 on errors (warnings alone exit 0)."""
    from lightact.data.skeleton.validate import format_problems, has_errors, validate_annotations

    if not file.is_file():
        raise FileNotFoundError(f"annotation file {file} does not exist")
    problems = validate_annotations(file, num_classes=num_classes)
    if not problems:
        console.print(f"{file}: no problems found")
        return
    if [p.kind for p in problems] == ["unreadable"]:
        raise DataError(problems[0].message)
    count = sum(p.severity == "error" for p in problems)
    console.print(f"{file}: {count} error(s), {len(problems) - count} warning(s)")
    console.print(format_problems(problems))
    if has_errors(problems):
        raise typer.Exit(1)


@data_app.command("check-images")
def check_images(
    root: Annotated[Path, typer.Argument(help="Stanford 40 folder (ImageSplits/, JPEGImages/) or a tree.")],
    layout: Annotated[str, typer.Option(help="stanford40, folder, or auto.")] = "auto",
) -> None:
    """Read an image dataset as training would: splits, classes, counts, and every unreadable file.
    Exit 1 when a file cannot be decoded."""
    from lightact.data.image.sources import ImageReadError, read_image_folder, read_stanford40

    if layout == "auto":
        from lightact.data.image.sources import image_dataset_format

        layout = image_dataset_format(root)
    splits = ("train", "test") if layout == "stanford40" else ("train", "val", "test")
    bad = []
    for split in splits:
        try:
            reader = read_stanford40 if layout == "stanford40" else read_image_folder
            samples = reader(root, split)
        except (OSError, ValueError) as err:
            if layout == "folder" and split != "train" and "no" in str(err):
                continue
            raise fail(err, 1) from None
        for i in range(len(samples)):
            try:
                samples.load(i, 64)
            except ImageReadError as err:
                bad.append(str(err))
        console.print(f"{split}: {len(samples)} images, {len(samples.classes)} classes")
    for line in bad:
        errors.print(line, style="red")
    if bad:
        console.print(f"{len(bad)} unreadable image(s); data.on_corrupt=skip leaves them out with a warning")
        raise typer.Exit(1)


@synth_app.command("skeleton")
def synth_skeleton(
    out: Annotated[Path, typer.Option(help="Annotation pickle to write.")] = Path("synth_skeleton.pkl"),
    samples_per_class: int = 60,
    seed: int = 0,
    val_fraction: float = 0.25,
) -> None:
    """The embedded skeleton dataset (NTU-25 layout) in the standard annotation pickle schema."""
    from lightact.data.skeleton.pickle_io import save_pickle
    from lightact.data.synthetic.skeleton import generate_skeleton_dataset

    data = generate_skeleton_dataset(
        samples_per_class=samples_per_class, seed=seed, val_fraction=val_fraction
    )
    save_pickle(data, out)
    sizes = ", ".join(f"{k}: {len(v)}" for k, v in data["split"].items())
    console.print(
        f"wrote {len(data['annotations'])} samples, {len(data['classes'])} classes ({sizes}) to {out}"
    )


@synth_app.command("video")
def synth_video(
    out: Annotated[Path, typer.Option(help="Folder for videos/, train.txt, val.txt, classes.txt.")] = Path(
        "synth_video"
    ),
    samples_per_class: int = 40,
    seed: int = 0,
    num_frames: Annotated[int, typer.Option(help="Frames per clip.")] = 16,
    size: Annotated[int, typer.Option(help="Frame width and height in pixels.")] = 64,
    val_fraction: float = 0.25,
) -> None:
    """The embedded video dataset as MP4 files and video lists (16 classes, 10 differ only in time)."""
    from lightact.data.synthetic.video import write_video_dataset

    try:
        written = write_video_dataset(out, samples_per_class, seed, num_frames, size, val_fraction)
    except ValueError as err:  # the options: a usage error, not the data's
        raise UsageError(str(err)) from None
    counts = {k: len(v.read_text().splitlines()) for k, v in written.items() if k != "classes"}
    console.print(
        f"wrote {sum(counts.values())} clips ({', '.join(f'{k}: {v}' for k, v in counts.items())}) to {out}; "
        f"train with data.format=list data.root={out} data.train_file={written['train']} "
        f"data.val_file={written['val']} data.labels_file={written['classes']}"
    )


@synth_app.command("image")
def synth_image(
    out: Annotated[Path, typer.Option(help="Folder for <split>/<class>/<name>.png.")] = Path("synth_image"),
    samples_per_class: int = 150,
    seed: int = 0,
    size: Annotated[int, typer.Option(help="Image width and height in pixels.")] = 64,
    test_fraction: float = 0.3,
) -> None:
    """The embedded still-image action set (stick figures with props) as a class-per-folder tree.
    Training needs no files: data.kind image without data.path renders the same images in memory."""
    from lightact.data.synthetic.image import generate_image_dataset, write_image_folder

    try:
        data = generate_image_dataset(samples_per_class, seed, size, test_fraction)
    except ValueError as err:  # the options: a usage error, not the data's
        raise UsageError(str(err)) from None
    counts = write_image_folder(data, out)
    sizes = ", ".join(f"{k}: {v}" for k, v in counts.items())
    console.print(f"wrote {len(data.keys)} images, {len(data.classes)} classes ({sizes}) to {out}")


@synth_app.command("longvideo")
def synth_longvideo(
    out: Annotated[Path, typer.Option(help="Folder for videos/, train.csv, val.csv, classes.txt.")] = Path(
        "synth_longvideo"
    ),
    videos_per_class: int = 80,
    duration: Annotated[float, typer.Option(help="Seconds per video.")] = 120.0,
    seed: int = 0,
    val_fraction: float = 0.25,
) -> None:
    """The embedded long-video dataset: 64x64, 4 fps videos whose class needs scene and event order."""
    from lightact.data.synthetic.longvideo import SynthLongVideoSpec, generate_longvideo_dataset

    try:
        spec = SynthLongVideoSpec(
            videos_per_class=videos_per_class, duration_s=duration, seed=seed, val_fraction=val_fraction
        )
    except ValueError as err:  # the options: a usage error, not the data's
        raise UsageError(str(err)) from None
    summary = generate_longvideo_dataset(out, spec, progress=True)
    console.print(
        f"{summary['videos']} videos ({summary['written']} written, the rest already there) of "
        f"{summary['duration_s']:g} s, {len(summary['classes'])} classes, train {summary['train']} / "
        f"val {summary['val']} -> {out}"
    )


@convert_app.command("ntu")
def convert_ntu(
    raw_dir: Annotated[
        Path, typer.Argument(help="Folder of NTU RGB+D .skeleton files (searched recursively).")
    ],
    dataset: Annotated[str, typer.Option(help="ntu60 or ntu120: decides the samples kept and the splits.")],
    out: Annotated[Path, typer.Option(help="Annotation pickle to write.")],
    missing: Annotated[
        Path | None, typer.Option(help="The official list of samples without skeletons.")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes; default all cores.")] = None,
) -> None:
    """NTU RGB+D raw skeletons -> pickle with the official X-Sub/X-View (60) or X-Sub/X-Set (120) splits."""
    from lightact.data.skeleton.ntu import convert_ntu as run_conversion

    stats = run_conversion(raw_dir, dataset, out, missing=missing, workers=workers)
    console.print(
        f"converted {stats['converted']} of {stats['files_found']} files "
        f"({stats['skipped_missing']} listed as missing, {stats['excluded']} not in {dataset}, "
        f"{stats['failed']} failed) in {stats['seconds']:.1f} s "
        f"({stats['files_per_second']:.0f} files/s) -> {out}"
    )
    for name, ids in stats["splits"].items():
        console.print(f"  {name}: {ids}")
    for message in stats["errors"].values():  # every file that failed, each naming its line
        console.print(f"failed: {message}", markup=False, highlight=False, style="red")
    if stats["failed"]:
        raise typer.Exit(1)


def main() -> None:
    """The ``lightact`` command (the entry point); see :class:`_Commands` for how errors end."""
    app(prog_name="lightact")


if __name__ == "__main__":
    main()
