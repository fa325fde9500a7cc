"""Training engine: exact resume, DDP equivalence, multi-view evaluation, artefacts, bad checkpoints."""

import json
import os
import subprocess
import sys

import lightning as L
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lightact.config import load_config
from lightact.data.batch import Batch
from lightact.engine.checkpoint import load_model
from lightact.engine.train import evaluate, predict_probabilities, train
from lightact.models import create_model


class SimulatedKill(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated kill")


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "validation",
    [[], ["data.val_split=null", "data.test_split=val"], ["trainer.ema_decay=0.9"]],
    ids=["validation", "none", "ema"],
)
def test_resumed_run_reaches_the_same_weights(tmp_path, tiny_overrides, restore_threads, validation):
    # One intra-op thread: CPU kernels then reduce in a fixed order, so the runs must agree exactly.
    # Dropout is on, so the RNG state must resume too. Without validation (the small-data configs)
    # the last checkpoint must still be written every epoch; with a weight average, the checkpoint
    # holds both the average and the weights being trained.
    settings = [
        *tiny_overrides,
        *validation,
        "trainer.max_epochs=3",
        "model.dropout=0.3",
        "trainer.num_threads=1",
    ]
    straight = train(load_config(None, [*settings, f"work_dir={tmp_path / 'straight'}"]))
    cfg = load_config(None, [*settings, f"work_dir={tmp_path / 'killed'}"])
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(cfg, callbacks=[SimulatedKill()])
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg)
    resumed = train(cfg, resume=True)

    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0, msg=key)
    rows = (resumed / "epochs.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1", "2"]


class StateAfterEachStep(L.Callback):
    def __init__(self):
        self.states = []

    def on_train_start(self, trainer, pl_module):
        self.buffers = {k: v.clone() for k, v in pl_module.model.named_buffers()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.states.append({k: v.detach().clone() for k, v in pl_module.model.state_dict().items()})


def test_weight_average_is_the_exponential_average_of_every_step(tmp_path, tiny_overrides, restore_threads):
    """trainer.ema_decay: the saved weights and batch-norm statistics are the exponential average
    of the states after each step (the first step's copied), and STAR's attention constants (its
    neighbour indices, masks and mask bias, which the average also runs over) come through
    untouched."""
    steps = StateAfterEachStep()
    decay = 0.8
    settings = [*tiny_overrides, "trainer.ema_decay=0.8", "trainer.num_threads=1", f"work_dir={tmp_path}"]
    work_dir = train(load_config(None, settings), callbacks=[steps])
    expected = dict(steps.states[0])
    for state in steps.states[1:]:
        for key, value in state.items():
            if value.is_floating_point():
                expected[key] = expected[key] * decay + value * (1 - decay)
    saved = load_file(work_dir / "model.safetensors")
    assert len(steps.states) > 1 and {k for k, v in expected.items() if v.is_floating_point()} <= saved.keys()
    for key, value in expected.items():
        if value.is_floating_point():
            torch.testing.assert_close(saved[key], value, atol=1e-6, rtol=1e-5, msg=key)
    model, _ = load_model(work_dir)
    for name, buffer in model.named_buffers():
        if ".attention." in name:  # neighbour indices, masks and the mask bias: constants
            assert torch.equal(buffer, steps.buffers[name]), name
    frames = torch.randn(40, model.num_joints, model.in_channels)
    assert torch.isfinite(model(frames, torch.zeros(40, dtype=torch.long))).all()


def test_training_writes_the_work_directory(tmp_path, tiny_overrides):
    work_dir = train(load_config(None, [*tiny_overrides, f"work_dir={tmp_path}"]))
    for name in (
        "model.safetensors",
        "config.yaml",
        "metrics.json",
        "epochs.csv",
        "confusion_matrix.png",
        "per_class.csv",
        "checkpoints/last.ckpt",
    ):
        assert (work_dir / name).is_file(), name
    assert any((work_dir / "tb").iterdir())
    metrics = json.loads((work_dir / "metrics.json").read_text())
    assert {"top1", "top5", "mean_class_accuracy", "per_class", "confusion_matrix"} <= metrics.keys()
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["num_samples"] == 32
    # The saved config is complete: loading it alone rebuilds the same experiment.
    assert load_config(work_dir / "config.yaml") == load_config(
        None, [*tiny_overrides, f"work_dir={tmp_path}"]
    )
    model, meta = load_model(work_dir)
    assert meta["classes"][0] == "sit_down" and not model.training


def test_evaluation_averages_views_per_sample():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x

    logits = torch.log(torch.tensor([[0.8, 0.2], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]))
    loader = [
        Batch((logits[:2],), torch.tensor([0, 0]), torch.tensor([0, 0])),
        Batch((logits[2:],), torch.tensor([1, 1]), torch.tensor([1, 1])),
    ]
    probs, labels = predict_probabilities(Fixed(), loader, 2)
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0.5], [0.35, 0.65]]))
    assert labels.tolist() == [0, 1]
    # A third sample whose every view failed to load is left out, not scored as zeros.
    with pytest.warns(UserWarning, match="1 test sample"):
        probs, labels = predict_probabilities(Fixed(), loader, 3)
    assert probs.shape == (2, 2) and labels.tolist() == [0, 1]


def test_multi_clip_evaluation_runs_every_view(tmp_path, tiny_overrides):
    cfg = load_config(None, [*tiny_overrides, f"work_dir={tmp_path}", "trainer.max_epochs=1"])
    work_dir = train(cfg)
    multi = load_config(None, [*tiny_overrides, "eval.num_clips=3", "eval.clip_len=24"])
    metrics = evaluate(multi, work_dir, out_dir=tmp_path / "multi")
    assert metrics["num_clips"] == 3 and metrics["num_samples"] == 32
    assert (tmp_path / "multi" / "confusion_matrix.png").is_file()

    other = load_config(None, ["model.name=stgcn", "data.synth.samples_per_class=8"])
    with pytest.raises(ValueError, match="holds model star_64"):
        evaluate(other, work_dir)


def test_foreign_or_missing_checkpoints_are_refused(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match="not written by lightact"):
        load_model(tmp_path / "foreign.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "nowhere")


@pytest.mark.slow
def test_two_ddp_processes_match_one_process(tmp_path, tiny_overrides):
    """2 CPU processes (gloo) with batch 8 each against 1 process accumulating 2 batches of 8:
    every optimiser step sees the same samples, batch norm sees the same per-batch statistics.
    Parameters must agree; batch-norm running averages legitimately differ (each rank keeps its
    own), so buffers are not compared."""
    common = [*tiny_overrides, "trainer.accelerator=cpu", "trainer.num_threads=1"]
    runs = {
        "ddp": ["trainer.strategy=ddp", "trainer.devices=2"],
        "single": ["trainer.accumulate_grad_batches=2"],
    }
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name, extra in runs.items():
        args = [f"--set={o}" for o in [*common, *extra, f"work_dir={tmp_path / name}"]]
        done = subprocess.run(
            [sys.executable, "-m", "lightact.cli", "train", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ddp, _ = load_model(tmp_path / "ddp")
    single, _ = load_model(tmp_path / "single")
    for (name, a), (_, b) in zip(ddp.named_parameters(), single.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


def test_pretrained_weights_load_what_fits_and_report_the_rest(tmp_path):
    from safetensors.torch import save_file

    from lightact.models.weights import load_pretrained

    source = create_model("tv/r3d_18", num_classes=7)
    target = create_model("tv/r3d_18", num_classes=5)
    # Lightning-style prefix and a pickle-free torch file; the head of another label set is skipped.
    torch.save({"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.pt")
    report = load_pretrained(target, tmp_path / "w.pt")
    assert report.head == ["fc.bias", "fc.weight"] and not report.problems
    torch.testing.assert_close(target.stem[0].weight, source.stem[0].weight)
    assert not torch.equal(target.fc.weight[:5], source.fc.weight[:5])

    class Renamed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(3, 2)

        def adapt_state_dict(self, state, conversion):
            return {k.replace("old.", "proj."): v for k, v in state.items()}

    save_file({"old.weight": torch.ones(2, 3), "old.bias": torch.zeros(2)}, tmp_path / "w.safetensors")
    model = Renamed()
    load_pretrained(model, tmp_path / "w.safetensors")
    assert torch.equal(model.proj.weight, torch.ones(2, 3))

    with pytest.raises(ValueError, match="no tensor .* fits"):
        load_pretrained(nn.Linear(4, 4), tmp_path / "w.safetensors")
    (tmp_path / "evil.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read as plain weights"):
        load_pretrained(model, tmp_path / "evil.pt")


def test_clean_state_dict_strips_one_wrapper_prefix_per_key():
    from lightact.models.weights import clean_state_dict

    t = torch.zeros(1)
    state = {"model.fc.weight": t, "module.fc.bias": t, "model.module.x": t, "modelling.y": t, "z": t}
    assert list(clean_state_dict(state)) == ["fc.weight", "fc.bias", "module.x", "modelling.y", "z"]


def test_a_model_of_another_modality_is_refused(tmp_path):
    cfg = load_config(None, ["model.name=tv/r3d_18", f"work_dir={tmp_path / 'run'}"])
    with pytest.raises(ValueError, match="takes video input but data.kind is 'skeleton'"):
        train(cfg)


def test_compiled_training_keeps_the_weights_layout_and_the_arithmetic(
    tmp_path, tiny_overrides, restore_threads
):
    """trainer.compile trains the same model (aot_eager: the compile machinery without code
    generation, which needs seconds where inductor needs minutes): the same keys, the same values
    to rounding, and a work directory that evaluates."""
    settings = [*tiny_overrides, "trainer.max_epochs=1", "trainer.num_threads=1"]
    eager = train(load_config(None, [*settings, f"work_dir={tmp_path / 'eager'}"]))
    compiled = train(
        load_config(None, [*settings, "trainer.compile=aot_eager", f"work_dir={tmp_path / 'compiled'}"])
    )
    a, b = load_file(eager / "model.safetensors"), load_file(compiled / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-4, msg=key)
    assert json.loads((compiled / "metrics.json").read_text())["num_samples"] == 32
