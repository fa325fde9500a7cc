"""Small-data protocols: K-fold cross-validation, validation held out of train (never the test
split), runs without validation, one-line errors for splits a file lacks, and ST-GCN's padding."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lightact.cli import app
from lightact.config import load_config
from lightact.data.skeleton.dataset import hold_out
from lightact.data.skeleton.pickle_io import save_pickle
from lightact.data.synthetic.skeleton import generate_skeleton_dataset
from lightact.engine.datamodule import build_datamodule
from lightact.engine.folds import summarise
from lightact.engine.skeleton_data import SkeletonDataModule


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def dataset_with_splits(path: Path, kind: str, samples_per_class: int = 4) -> Path:
    """The synthetic set with ``kind`` splits: ``folds`` (2 folds by a fake subject) or
    ``train_test`` (no val split); every sample gets a ``subject`` field."""
    data = generate_skeleton_dataset(samples_per_class=samples_per_class, seed=5)
    for i, ann in enumerate(data["annotations"]):
        ann["subject"] = f"p{i % 4}"
    ids = [a["frame_dir"] for a in data["annotations"]]
    subject = {a["frame_dir"]: a["subject"] for a in data["annotations"]}
    if kind == "folds":
        data["split"] = {}
        for k, test_subjects in enumerate([{"p0", "p1"}, {"p2", "p3"}]):
            data["split"][f"fold{k}_train"] = [i for i in ids if subject[i] not in test_subjects]
            data["split"][f"fold{k}_test"] = [i for i in ids if subject[i] in test_subjects]
    else:
        data["split"] = {
            "train": [i for i in ids if subject[i] != "p3"],
            "test": [i for i in ids if subject[i] == "p3"],
        }
    save_pickle(data, path)
    return path


def test_k_fold_cross_validation_runs_every_fold_and_summarises(tmp_path, tiny_overrides, one_thread):
    data = dataset_with_splits(tmp_path / "folds.pkl", "folds")
    result = CliRunner().invoke(
        app,
        ["train", *tiny_overrides, f"data.path={data}", f"work_dir={tmp_path / 'cv'}", "--folds", "2"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "cv" / "folds_summary.json").read_text())
    per_fold = []
    for k in range(2):
        fold_dir = tmp_path / "cv" / f"fold{k}"
        metrics = json.loads((fold_dir / "metrics.json").read_text())
        per_fold.append(metrics["top1"])
        assert metrics["num_samples"] == 32  # half the subjects of 16 classes x 4
        fold_cfg = load_config(fold_dir / "config.yaml")
        assert (fold_cfg.data.train_split, fold_cfg.data.test_split) == (f"fold{k}_train", f"fold{k}_test")
        assert fold_cfg.data.val_split is None  # no validation on the fold's own test split
        assert not list((fold_dir / "checkpoints").glob("best-*"))
    assert [f["top1"] for f in summary["per_fold"]] == per_fold
    assert summary["top1"]["mean"] == pytest.approx(statistics.fmean(per_fold))
    assert summary["top1"]["std"] == pytest.approx(statistics.stdev(per_fold))
    assert summary["pooled_top1"] == pytest.approx(statistics.fmean(per_fold))  # equal-sized folds
    assert sum(map(sum, summary["confusion_matrix"])) == 64
    rows = list(csv.reader((tmp_path / "cv" / "folds_summary.csv").open()))
    assert [r[0] for r in rows] == ["fold", "0", "1", "mean", "std"]
    assert "2-fold cross-validation" in result.output and "mean ± std" in result.output


def test_summary_statistics():
    folds = [
        {"fold": 0, "num_samples": 10, "top1": 0.9, "mean_class_accuracy": 0.8},
        {"fold": 1, "num_samples": 30, "top1": 0.5, "mean_class_accuracy": 0.6},
    ]
    summary = summarise(folds)
    assert summary["top1"] == {"mean": pytest.approx(0.7), "std": pytest.approx(0.2828427, rel=1e-6)}
    assert summary["pooled_top1"] == pytest.approx((9 + 15) / 40)


def test_asking_for_folds_the_data_lacks_is_one_line(tmp_path, tiny_overrides):
    data = dataset_with_splits(tmp_path / "folds.pkl", "folds")
    result = CliRunner().invoke(app, ["train", *tiny_overrides, f"data.path={data}", "--folds", "3"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "has no split 'fold2_train'" in result.output and "its folds: fold0, fold1" in result.output


def test_val_split_missing_from_a_train_test_file_is_one_line(tmp_path, tiny_overrides):
    data = dataset_with_splits(tmp_path / "tt.pkl", "train_test")
    result = CliRunner().invoke(
        app, ["train", *tiny_overrides, f"data.path={data}", "data.test_split=test", f"work_dir={tmp_path}"]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.output.strip().replace("\n", " ")
    assert "data.val_split 'val' is not a split of" in line and "tt.pkl" in line
    assert "(its splits: test, train)" in line and "data.val_fraction" in line
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def data_module(
    path: Path, *overrides: str, seed: int = 0, input_format: str = "packed"
) -> SkeletonDataModule:
    cfg = load_config(None, [f"data.path={path}", "data.test_split=test", f"seed={seed}", *overrides])
    return build_datamodule(cfg, input_format)


def ids(dataset) -> set[str]:
    return {a["frame_dir"] for a in dataset.annotations}


@pytest.mark.parametrize("group", [None, "subject"])
def test_validation_fraction_is_held_out_of_train_and_never_touches_test(tmp_path, group):
    path = dataset_with_splits(tmp_path / "tt.pkl", "train_test", samples_per_class=8)
    extra = [] if group is None else [f"data.val_group={group}"]
    module = data_module(path, "data.val_fraction=0.25", *extra)
    module.check_splits()  # no val split in the file: fine, validation comes out of train
    train, val, test = (ids(module.dataset(s, train=s == "train")) for s in ("train", "val", "test"))
    split = module.source["split"]
    assert train | val == set(split["train"]) and not train & val
    assert not val & set(split["test"]) and test == set(split["test"])
    labels = {a["frame_dir"]: a["label"] for a in module.source["annotations"]}
    subjects = {a["frame_dir"]: a["subject"] for a in module.source["annotations"]}
    if group is None:  # stratified: 25 % of each class's 6 training samples, rounded
        assert sorted(labels[i] for i in val) == sorted([c for c in range(16) for _ in range(2)])
    else:  # one of the three training subjects, whole
        assert len({subjects[i] for i in val}) == 1 and not {subjects[i] for i in val} & {
            subjects[i] for i in train
        }
    again = data_module(path, "data.val_fraction=0.25", *extra)
    assert ids(again.dataset("val", train=False)) == val  # seeded
    other = [
        ids(data_module(path, "data.val_fraction=0.25", *extra, seed=s).dataset("val", False)) for s in (1, 2)
    ]
    assert any(o != val for o in other)  # another seed, another hold-out


def test_hold_out_keeps_one_sample_of_each_class_in_training():
    annotations = [{"frame_dir": f"s{i}", "label": i % 3} for i in range(6)]  # two of each class
    kept, held = hold_out(annotations, 0.9, seed=0)
    assert sorted(a["label"] for a in kept) == [0, 1, 2] == sorted(a["label"] for a in held)


def test_training_without_validation(tmp_path, tiny_overrides, one_thread):
    path = dataset_with_splits(tmp_path / "tt.pkl", "train_test")
    from lightact.engine.train import train

    cfg = load_config(
        None,
        [
            *tiny_overrides,
            f"data.path={path}",
            "data.val_split=null",
            "data.test_split=test",
            f"work_dir={tmp_path}",
        ],
    )
    work_dir = train(cfg)
    header = (work_dir / "epochs.csv").read_text().splitlines()[0]
    assert "train/loss" in header and "val" not in header
    assert (work_dir / "checkpoints" / "last.ckpt").is_file()
    assert not list((work_dir / "checkpoints").glob("best-*"))
    assert json.loads((work_dir / "metrics.json").read_text())["num_samples"] == 16  # subject p3


def test_stgcn_pads_to_the_batch_longest_clip_by_default(tmp_path):
    path = dataset_with_splits(tmp_path / "tt.pkl", "train_test")
    module = data_module(path, "data.train_transforms=[]", input_format="padded")
    items = [module.dataset("train", train=True)[(0, i)] for i in range(3)]
    lengths = [item["frames"].shape[1] for item in items]
    assert len(set(lengths)) > 1  # the synthetic clips differ in length
    (x,) = module.collate(items).inputs
    assert x.shape[2] == max(lengths) < 300
    fixed = data_module(path, "data.train_transforms=[]", "data.max_frames=300", input_format="padded")
    assert fixed.collate(items).inputs[0].shape[2] == 300


def test_test_views_resample_different_frames_when_the_test_transforms_resample(tmp_path):
    """eval.num_clips with the real-data configs' test transforms (a middle-frame resample to 32):
    each view must be its own sampling of the clip, or averaging the views gains nothing."""
    path = dataset_with_splits(tmp_path / "tt.pkl", "train_test")
    resample = "data.test_transforms=[center,{name: temporal_resample, length: 8, random_offset: false}]"
    module = data_module(path, resample, "eval.num_clips=3")
    views = module.dataset("test", train=False, views=3)
    frames = [views[i]["frames"] for i in range(3)]  # the three views of sample 0
    assert all(f.shape[0] == 8 for f in frames)
    assert not torch.equal(frames[0], frames[1]) and not torch.equal(frames[1], frames[2])
    again = data_module(path, resample, "eval.num_clips=3").dataset("test", train=False, views=3)
    assert torch.equal(again[1]["frames"], frames[1])  # seeded: every evaluation the same views
    single = module.dataset("test", train=False)
    middle = single[0]["frames"]
    assert middle.shape[0] == 8 and not any(torch.equal(middle, f) for f in frames[1:])
