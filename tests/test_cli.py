"""The command line: thin, and its errors are messages rather than tracebacks."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lightact.cli import app
from lightact.data.skeleton.pickle_io import safe_load_pickle

runner = CliRunner()


def test_models_lists_the_registry():
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    for name in ("star_64", "star_128", "stgcn"):
        assert name in result.output


def test_config_errors_exit_2_with_the_key():
    result = runner.invoke(app, ["train", "--set", "trainer.max_epoch=1"])
    assert result.exit_code == 2
    assert "trainer.max_epoch: unknown key" in result.output


def test_synth_skeleton_writes_a_valid_pickle(tmp_path):
    out = tmp_path / "synth.pkl"
    result = runner.invoke(app, ["data", "synth", "skeleton", "--out", str(out), "--samples-per-class", "3"])
    assert result.exit_code == 0, result.output
    data = safe_load_pickle(out)
    assert len(data["annotations"]) == 3 * len(data["classes"])
    checked = runner.invoke(app, ["data", "validate", str(out), "--num-classes", str(len(data["classes"]))])
    assert checked.exit_code == 0 and "no problems" in checked.output
    too_few = runner.invoke(app, ["data", "validate", str(out), "--num-classes", "3"])
    assert too_few.exit_code == 1 and "synth_s0_c03_0000" in too_few.output


def test_eval_reports_from_a_work_dir(tmp_path, tiny_overrides):
    from lightact.config import load_config
    from lightact.engine.train import train

    work_dir = train(
        load_config(None, [*tiny_overrides, "trainer.max_epochs=1", f"work_dir={tmp_path / 'run'}"])
    )
    out = tmp_path / "report"
    result = runner.invoke(
        app, ["eval", str(work_dir / "config.yaml"), "--checkpoint", str(work_dir), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "walk_apart" in result.output
    assert {p.name for p in out.iterdir()} == {"metrics.json", "per_class.csv", "confusion_matrix.png"}


def test_one_set_takes_several_overrides(tmp_path):
    from lightact.cli import _config

    cfg = _config(None, ["model.dim=128"], ["trainer.max_epochs=5"])
    assert cfg.model.kwargs == {"dim": 128} and cfg.trainer.max_epochs == 5
    # With no CONFIG file, typer hands the first extra override over as CONFIG.
    cfg = _config(Path("trainer.max_epochs=7"), ["model.dim=32"])
    assert cfg.trainer.max_epochs == 7 and cfg.model.kwargs == {"dim": 32}
    # ... also when its value is a path
    cfg = _config(Path(f"work_dir={tmp_path / 'run'}"), ["model.dim=32"])
    assert cfg.work_dir == tmp_path / "run"
    result = runner.invoke(app, ["train", "--set", "model.dim=8", "trainer.max_epoch=5"])
    assert result.exit_code == 2 and "trainer.max_epoch: unknown key" in result.output
    result = runner.invoke(app, ["train", "--set", "model.dim=8", "stray"])
    assert result.exit_code == 2 and "config file stray does not exist" in result.output
    from lightact.configs import CONFIG_DIR

    config = CONFIG_DIR / "star_synth.yaml"
    result = runner.invoke(app, ["train", str(config), "--set", "model.dim=8", "stray"])
    assert result.exit_code == 2 and "unexpected argument(s) ['stray']" in result.output


def test_regression_metrics_print_as_errors_per_target(capsys):
    import torch

    from lightact.cli import _print_metrics
    from lightact.engine.regression import regression_metrics

    metrics = regression_metrics(torch.tensor([[1.0], [3.0]]), torch.tensor([[1.0], [1.0]]), ["like_ratio"])
    metrics["num_clips"] = 1
    _print_metrics(metrics)
    out = capsys.readouterr().out
    assert "like_ratio" in out and "MSE 2" in out  # (0^2 + 2^2) / 2


# --- what a new user meets first (issue 17) ---


@pytest.mark.parametrize(
    "args",
    [
        ["-h"],
        ["train", "-h"],
        ["eval", "-h"],
        ["predict", "-h"],
        ["data", "-h"],
        ["data", "synth", "video", "-h"],
    ],
)
def test_short_help_works_everywhere(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ") and "-h, --help" in result.output


def test_bench_parses_its_own_short_help(capsys):
    result = runner.invoke(app, ["bench", "-h"])
    assert result.exit_code == 0, result.output
    assert "usage: lightact bench" in capsys.readouterr().out + result.output


def test_version():
    import lightact

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"lightact {lightact.__version__}"


def test_configs_lists_every_shipped_file_on_one_line_each():
    from lightact.configs import packaged_names

    result = runner.invoke(app, ["configs"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    names = packaged_names()
    assert len(lines) == len(names) and [line.split()[0] for line in lines] == names
    assert "star_synth" in names and "layouts/upper_body8" in names
    by_name = dict(line.split(maxsplit=1) for line in lines)
    # The first sentence of the file's leading comment.
    assert by_name["star_ntu60_xsub"] == "STAR-64 on NTU RGB+D 60, xsub."


def test_train_by_name_from_another_directory(tmp_path, monkeypatch):
    from lightact.cli import _config

    monkeypatch.chdir(tmp_path)
    assert _config(Path("pst_xs_synth"), []).name == "pst_xs_synth"
    assert _config(Path("configs/pst_xs_synth.yaml"), []).name == "pst_xs_synth"
    result = runner.invoke(app, ["train", "pst_xs_synt"])
    assert result.exit_code == 2 and "did you mean pst_xs_synth" in result.output


def test_models_lists_external_families_and_checks_the_modality():
    result = runner.invoke(app, ["models", "--modality", "image"])
    assert result.exit_code == 0, result.output
    assert "timm/<name>" in result.output and "timm/vit_tiny_patch16_224" in result.output
    assert "star_64" not in result.output and "tv/<name>" not in result.output
    everything = runner.invoke(app, ["models"])
    for name in ("star_64", "stgcn", "pst_t", "stan", "composite_mnv3s", "timm/<name>", "tv/<name>"):
        assert name in everything.output
    wrong = runner.invoke(app, ["models", "--modality", "foo"])
    assert wrong.exit_code == 2
    assert wrong.output.strip() == "unknown modality 'foo': choose one of skeleton, video, image, longvideo"


def test_models_external_lists_torchvision_names():
    result = runner.invoke(app, ["models", "--modality", "video", "--external"])
    assert result.exit_code == 0, result.output
    assert "tv/r3d_18" in result.output and "tv/mvit_v2_s" in result.output and "timm/" not in result.output


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_train_on_a_used_work_dir_says_what_to_do(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    result = runner.invoke(app, ["train", "--set", f"work_dir={tmp_path / 'run'}"])
    assert result.exit_code == 2
    line = _one_line(result)
    assert "already holds a run" in line and "--resume" in line and "work_dir=" in line
    nothing = runner.invoke(app, ["train", "--resume", "--set", f"work_dir={tmp_path / 'none'}"])
    assert nothing.exit_code == 2 and "no checkpoint at" in _one_line(nothing)


def test_eval_on_a_missing_folder_is_one_line(tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in _one_line(result)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["eval", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "holds no config.yaml" in _one_line(result)


def test_eval_reads_the_work_dir_config_and_dumps_every_sample(trained_work_dir, tmp_path):
    import csv
    import json

    out, dump = tmp_path / "report", tmp_path / "samples.csv"
    result = runner.invoke(app, ["eval", str(trained_work_dir), "--out", str(out), "--dump", str(dump)])
    assert result.exit_code == 0, result.output
    assert "evaluating" in result.output  # the progress bar
    metrics = json.loads((out / "metrics.json").read_text())
    with dump.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == metrics["num_samples"]
    assert list(rows[0])[:6] == ["sample", "label", "prediction", "correct", "top1", "top1_score"]
    classes = [row["class"] for row in metrics["per_class"]]
    for row in rows:
        scores = [float(row[f"top{k}_score"]) for k in range(1, 6)]
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
        assert row["prediction"] == row["top1"] and {row["label"], row["prediction"]} <= set(classes)
        assert row["correct"] == str(int(row["label"] == row["prediction"]))
    assert sum(int(r["correct"]) for r in rows) / len(rows) == pytest.approx(metrics["top1"])
    assert len({r["sample"] for r in rows}) == len(rows)  # ids, not positions
    # CONFIG and --config name the experiment when the work dir's own is not the one wanted.
    other = runner.invoke(app, ["eval", str(trained_work_dir), "--config", "pst_xs_synth", "--out", str(out)])
    assert other.exit_code == 2 and "holds model star_64, the config asks for pst_xs" in _one_line(other)


def test_messages_print_brackets_literally(monkeypatch, capsys):
    import lightact.data.skeleton.pose as pose
    from lightact.cli import _print_metrics
    from lightact.data.skeleton.pose.mediapipe import INSTALL_HINT

    def no_mediapipe(*args, **kwargs):
        raise pose.MissingDependencyError(f"pose extraction needs MediaPipe: {INSTALL_HINT}")

    monkeypatch.setattr(pose, "run_pose", no_mediapipe)
    result = runner.invoke(app, ["pose", "video.mp4", "--out", "x.pkl"])
    assert result.exit_code == 2 and "pip install 'lightact[pose]'" in result.output
    metrics = {
        "num_samples": 1,
        "per_class": [{"class": "[bold]open[/bold] [door]", "support": 1, "accuracy": 1.0}],
        "top1": 1.0,
        "top5": 1.0,
        "mean_class_accuracy": 1.0,
        "mAP": 1.0,
    }
    _print_metrics(metrics)
    assert "[bold]open[/bold] [door]" in capsys.readouterr().out
