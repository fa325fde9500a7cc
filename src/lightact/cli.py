"""The ``lightact`` command line: each subcommand is a thin call into the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Efficient transformer-based human action recognition.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Generate, convert and check datasets.", no_args_is_help=True)
synth_app = typer.Typer(help="Generate the embedded synthetic datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
data_app.add_typer(synth_app, name="synth")
console = Console(soft_wrap=True)  # long paths stay on one line, copy-pasteable

ConfigArg = Annotated[Path | None, typer.Argument(help="Experiment YAML; none = the embedded quickstart.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Dotted override, e.g. model.dim=128.")]


def _config(config: Path | None, overrides: list[str] | None):
    from lightact.config import ConfigError, load_config

    try:
        return load_config(config, overrides or [])
    except ConfigError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None


def _print_metrics(metrics: dict) -> None:
    table = Table(title=f"{metrics['num_samples']} test samples, {metrics.get('num_clips', 1)} view(s) each")
    for column in ("class", "support", "accuracy"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in metrics["per_class"]:
        table.add_row(row["class"], str(row["support"]), f"{row['accuracy']:.1%}")
    console.print(table)
    top5 = next(k for k in metrics if k.startswith("top") and k != "top1")
    console.print(
        f"top-1 [bold]{metrics['top1']:.2%}[/bold]  {top5} {metrics[top5]:.2%}  "
        f"mean class {metrics['mean_class_accuracy']:.2%}"
    )


@app.command()
def train(
    config: ConfigArg = None,
    overrides: SetOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in the config's work_dir.")] = False,
) -> None:
    """Train a model, then evaluate it; writes weights, config, logs and reports to the work dir."""
    from lightact.engine.train import train as run_training

    cfg = _config(config, overrides)
    work_dir = run_training(cfg, resume=resume)
    import json

    metrics_file = work_dir / "metrics.json"
    if metrics_file.is_file():
        _print_metrics(json.loads(metrics_file.read_text()))
    console.print(f"work dir: [bold]{work_dir}[/bold]")


@app.command("eval")
def evaluate(
    config: Annotated[Path, typer.Argument(help="Experiment YAML the model was trained with.")],
    checkpoint: Annotated[Path, typer.Option(help="Work dir or model.safetensors.")],
    overrides: SetOpt = None,
    out: Annotated[Path | None, typer.Option(help="Where reports go; default beside the checkpoint.")] = None,
) -> None:
    """Top-1, top-5 and mean-class accuracy, per-class table and confusion matrix PNG."""
    from lightact.engine.train import evaluate as run_evaluation

    cfg = _config(config, overrides)
    _print_metrics(run_evaluation(cfg, checkpoint, out_dir=out))


@app.command()
def predict(
    checkpoint: Annotated[Path, typer.Argument(help="Work dir or model.safetensors of a trained model.")],
    input: Annotated[Path, typer.Argument(help="Video, skeleton pickle/npy, or a folder of them.")],
    window: Annotated[
        int | None, typer.Option(help="Frames per window; default: whole clip up to 300.")
    ] = None,
    stride: Annotated[
        int | None, typer.Option(help="Frames between window starts; default window/2.")
    ] = None,
    topk: Annotated[int, typer.Option(help="Classes shown per window.")] = 5,
    out: Annotated[Path, typer.Option(help="Folder for <name>.json and <name>_timeline.png.")] = Path(
        "predictions"
    ),
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    show_windows: Annotated[bool, typer.Option("--windows", help="Print every window's top-k.")] = False,
) -> None:
    """Classify a video (pose extraction, then the skeleton model) or skeleton files, in sliding windows."""
    import pickle

    from lightact.inference import predict_path

    try:
        predictions = predict_path(
            checkpoint, input, window, stride, topk, out, device=device, skip_errors=True
        )
    except (ValueError, OSError, pickle.UnpicklingError) as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None
    for prediction in predictions:
        console.print(prediction.table(windows=show_windows))
    if not predictions:
        console.print(f"[red]nothing in {input} could be classified[/red]")
        raise typer.Exit(1)
    console.print(f"JSON and timeline PNGs in [bold]{out}[/bold]")


@app.command()
def models(
    modality: Annotated[str | None, typer.Option(help="skeleton, video, image or longvideo.")] = None,
) -> None:
    """List the registered models."""
    from lightact.models.registry import list_models, model_entry

    table = Table()
    for column in ("name", "modality", "input", "description"):
        table.add_column(column)
    for name in list_models(modality):
        entry = model_entry(name)
        table.add_row(name, entry.modality, entry.input_format, entry.description)
    console.print(table)


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


convert_app = typer.Typer(help="Convert datasets into the standard skeleton pickle.", no_args_is_help=True)
data_app.add_typer(convert_app, name="convert")


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
    if stats["failed"]:
        raise typer.Exit(1)


@data_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="Skeleton annotation pickle.")],
    num_classes: Annotated[int | None, typer.Option(help="Labels must lie below this.")] = None,
) -> None:
    """Check a skeleton pickle against the schema; exits 1 when there are problems."""
    from lightact.data.skeleton.validate import format_problems, validate_annotations

    problems = validate_annotations(file, num_classes=num_classes)
    if not problems:
        console.print(f"{file}: no problems found")
        return
    console.print(format_problems(problems), markup=False, highlight=False)
    raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
