"""The command line: thin, and its errors are messages rather than tracebacks."""

from pathlib import Path

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
