"""What a training run prints and logs: Lightning's tips, its empty FLOPs table and known-harmless
warnings stay out of the terminal; the resolved config is the loggers' hyper-parameters; the
loggers are Lightning's, picked by ``trainer.loggers``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from lightact.cli import app
from lightact.config import load_config


def test_a_run_prints_no_lightning_noise_and_logs_its_config(tmp_path, tiny_overrides):
    work_dir = tmp_path / "run"
    overrides = [*tiny_overrides, "trainer.max_epochs=1", "trainer.num_threads=1", f"work_dir={work_dir}"]
    env = {**os.environ, "PYTHONWARNINGS": "default"}  # every warning a run raises is printed
    done = subprocess.run(
        [sys.executable, "-m", "lightact.cli", "train", "--set", *overrides],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for noise in ("Tip:", "litlogger", "litmodels", "FLOPs", "LeafSpec", "GPU available", "TPU available",
                  "estimate number of stepping batches", "v_num"):  # fmt: skip
        assert noise not in output, (noise, output)
    assert "star_64: 0.0" in output and "M parameters" in output  # lightact's own one line instead
    hparams = yaml.safe_load((work_dir / "tb" / "hparams.yaml").read_text())
    assert hparams["model"]["name"] == "star_64" and hparams["trainer"]["max_epochs"] == 1
    assert hparams["data"]["synth"]["samples_per_class"] == 8
    metrics_csv = work_dir / "csv" / "version_0" / "metrics.csv"
    assert "train/loss" in metrics_csv.read_text().splitlines()[0]
    assert yaml.safe_load((metrics_csv.parent / "hparams.yaml").read_text()) == hparams


def test_loggers_are_picked_by_the_config(tmp_path):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from lightact.engine.train import build_loggers

    cfg = load_config(None, ["trainer.loggers=[tensorboard]"])
    assert [type(logger) for logger in build_loggers(cfg, tmp_path)] == [TensorBoardLogger]
    cfg = load_config(None, ["trainer.loggers=[csv, tensorboard]"])
    assert [type(logger) for logger in build_loggers(cfg, tmp_path)] == [CSVLogger, TensorBoardLogger]
    assert build_loggers(load_config(None, ["trainer.loggers=[]"]), tmp_path) == []


@pytest.mark.parametrize("extra", ["mlflow", "wandb"])
def test_a_missing_logger_extra_is_a_one_line_hint(tmp_path, monkeypatch, extra):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == extra else real(name, *a)
    )
    result = CliRunner().invoke(
        app, ["train", "--set", f"trainer.loggers=[csv, {extra}]", f"work_dir={tmp_path / 'run'}",
              "data.synth.samples_per_class=2", "model.dim=16", "model.depth=1", "model.heads=2"],
    )  # fmt: skip
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"pip install 'lightact[{extra}]'" in lines[0], result.output
    assert not (tmp_path / "run" / "checkpoints").exists()  # stopped before training


def test_an_unknown_logger_names_the_key():
    result = CliRunner().invoke(app, ["train", "--set", "trainer.loggers=[comet]"])
    assert result.exit_code == 2 and "trainer.loggers.0" in result.output
