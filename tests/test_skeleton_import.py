"""`lightact data import`: per-sequence text/CSV/.npy files + a YAML spec -> annotation pickle.

Written here: small folders shaped like MSR Action3D (one joint per row, a confidence column) and
SBU (one frame per row, two persons, a frame-number column), so every reading rule and every error
message is checked against values we know. The real datasets are tested in test_real_skeletons.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lightact.cli import app
from lightact.data.skeleton.importer import (
    ImportFileError,
    ImportSpecError,
    import_dataset,
    load_import_spec,
    read_sequence,
)
from lightact.data.skeleton.pickle_io import safe_load_pickle
from lightact.data.skeleton.validate import validate_annotations

JOINTS = 4


def msr_like(root: Path, subjects=(1, 2, 3, 4), actions=(1, 2), reps=(1, 2), seed=0) -> dict[str, np.ndarray]:
    """Files aAA_sSS_eEE.txt: one joint per row, 'x y z c'; returns the xyz written, by sample id."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for a in actions:
        for s in subjects:
            for e in reps:
                frames = int(rng.integers(3, 7))
                xyz = rng.normal(size=(frames, JOINTS, 3)).round(4)
                conf = np.ones((frames, JOINTS, 1))
                rows = np.concatenate([xyz, conf], axis=-1).reshape(-1, 4)
                name = f"a{a:02d}_s{s:02d}_e{e:02d}"
                np.savetxt(root / f"{name}.txt", rows, fmt="%.4f")
                written[name] = xyz
    return written


def write_spec(path: Path, root: Path, **changes: str) -> Path:
    """An MSR-like spec; ``changes`` replace whole lines by key."""
    lines = {
        "root": f"root: {root}",
        "files": 'files: "a*.txt"',
        "skip_columns": "skip_columns: [3]",
        "joints": f"joints: {JOINTS}",
        "persons": "persons: 1",
        "coords": "coords: 3",
        "fields": 'fields: {pattern: "a{label}_s{subject}_e{repetition}.txt"}',
        "id": 'id: "a{label}_s{subject}_e{repetition}"',
        "classes": "classes: [wave, kick]",
        "split": "split: {by: subject, train: [1, 3]}",
    }
    lines.update(changes)
    path.write_text("\n".join(v for v in lines.values() if v) + "\n")
    return path


def test_text_files_become_keypoints_labels_and_a_subject_split(tmp_path):
    written = msr_like(tmp_path / "raw")
    spec = write_spec(tmp_path / "spec.yaml", tmp_path / "raw")
    report = import_dataset(spec, tmp_path / "out.pkl")
    data = safe_load_pickle(tmp_path / "out.pkl")
    assert validate_annotations(data) == []
    assert report.samples == report.files_found == 16 and report.dropped == []
    assert data["classes"] == ["wave", "kick"]
    by_id = {a["frame_dir"]: a for a in data["annotations"]}
    assert set(by_id) == set(written)
    ann = by_id["a02_s03_e01"]
    assert ann["label"] == 1 and ann["subject"] == "03" and ann["repetition"] == "01"
    assert ann["keypoint"].dtype == np.float32 and ann["keypoint"].shape == (1, *written["a02_s03_e01"].shape)
    np.testing.assert_allclose(ann["keypoint"][0], written["a02_s03_e01"], atol=1e-6)
    assert ann["total_frames"] == ann["keypoint"].shape[1]
    # "01" in a file name and 1 in the spec are the same subject.
    assert {by_id[i]["subject"] for i in data["split"]["train"]} == {"01", "03"}
    assert {by_id[i]["subject"] for i in data["split"]["test"]} == {"02", "04"}


def test_csv_rows_of_two_persons_with_a_frame_number(tmp_path):
    """SBU's shape: one frame a row, the frame number first, then person 1's joints, then person 2's."""
    root = tmp_path / "raw"
    rng = np.random.default_rng(1)
    truth = {}
    for pair in ("s01s02", "s03s04", "s05s06"):
        for label in ("01", "02"):
            folder = root / pair / label / "001"
            folder.mkdir(parents=True)
            xyz = rng.uniform(size=(5, 2, JOINTS, 3)).round(5)
            rows = np.concatenate([np.arange(5)[:, None] + 10, xyz.reshape(5, -1)], axis=1)
            (folder / "skeleton_pos.txt").write_text("\n".join(",".join(f"{v:g}" for v in r) for r in rows))
            truth[f"{pair}_{label}_001"] = xyz
    spec = write_spec(
        tmp_path / "sbu.yaml",
        root,
        files='files: "*/*/*/skeleton_pos.txt"',
        skip_columns="skip_columns: [0]\ndelimiter: ','",
        persons="persons: 2",
        fields="fields: {regex: '(?P<subject>s[0-9]+s[0-9]+)/(?P<label>[0-9]+)/(?P<repetition>[0-9]+)/"
        "skeleton_pos.txt'}",
        id='id: "{subject}_{label}_{repetition}"',
        split="split: {by: subject, folds: [[s01s02], [s03s04, s05s06]]}",
    )
    import_dataset(spec, tmp_path / "out.pkl")
    data = safe_load_pickle(tmp_path / "out.pkl")
    for ann in data["annotations"]:
        # [M, T, V, C]: persons first.
        np.testing.assert_allclose(ann["keypoint"], truth[ann["frame_dir"]].transpose(1, 0, 2, 3), atol=1e-6)
    split = data["split"]
    assert sorted(split) == ["fold0_test", "fold0_train", "fold1_test", "fold1_train"]
    assert sorted(split["fold0_test"]) == ["s01s02_01_001", "s01s02_02_001"]
    assert sorted(split["fold0_train"]) == sorted(split["fold1_test"])
    assert set(split["fold1_train"]) | set(split["fold1_test"]) == set(truth)


def test_k_folds_deal_the_sorted_values_round_robin(tmp_path):
    msr_like(tmp_path / "raw", subjects=(1, 2, 3, 4, 5, 10))
    spec = write_spec(tmp_path / "spec.yaml", tmp_path / "raw", split="split: {by: subject, folds: 3}")
    import_dataset(spec, tmp_path / "out.pkl")
    data = safe_load_pickle(tmp_path / "out.pkl")
    subject = {a["frame_dir"]: int(a["subject"]) for a in data["annotations"]}
    # Numeric order (10 after 5, not after 1), dealt 0, 1, 2, 0, 1, 2.
    folds = [sorted({subject[i] for i in data["split"][f"fold{k}_test"]}) for k in range(3)]
    assert folds == [[1, 4], [2, 5], [3, 10]]
    for k in range(3):
        assert not set(data["split"][f"fold{k}_train"]) & set(data["split"][f"fold{k}_test"])


def test_npy_files(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    xyz = np.arange(2 * JOINTS * 3, dtype=np.float32).reshape(2, JOINTS, 3) + 1
    np.save(root / "a01_s01_e01.npy", xyz)
    np.save(root / "a02_s03_e01.npy", xyz * 2)
    spec = write_spec(
        tmp_path / "spec.yaml",
        root,
        files='files: "*.npy"',
        skip_columns="",
        fields='fields: {pattern: "a{label}_s{subject}_e{repetition}.npy"}',
    )
    import_dataset(spec, tmp_path / "out.pkl")
    ann = next(a for a in safe_load_pickle(tmp_path / "out.pkl")["annotations"] if a["label"] == 0)
    np.testing.assert_array_equal(ann["keypoint"][0], xyz)


def test_an_all_zero_sequence_is_dropped_and_reported(tmp_path):
    msr_like(tmp_path / "raw")
    np.savetxt(tmp_path / "raw" / "a01_s01_e01.txt", np.zeros((3 * JOINTS, 4)))
    (tmp_path / "raw" / "a01_s02_e01.txt").write_text("")
    report = import_dataset(write_spec(tmp_path / "spec.yaml", tmp_path / "raw"), tmp_path / "out.pkl")
    assert {(d["sample"], d["reason"]) for d in report.dropped} == {
        ("a01_s01_e01", "every coordinate is zero"),
        ("a01_s02_e01", "no data row"),
    }
    ids = {a["frame_dir"] for a in safe_load_pickle(tmp_path / "out.pkl")["annotations"]}
    assert report.samples == len(ids) == 14 and "a01_s01_e01" not in ids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 2 3 1\n1 2 3\n", r"bad\.txt: line 2: 3 columns, expected 4 like line 1"),
        ("1 2 3 1\n1 2 x 1\n", r"bad\.txt: line 2, column 3: 'x' is not a number"),
        ("# header\n" + "1 2 3 1\n" * 5, r"bad\.txt: line 6: the last frame is incomplete: 5 data rows"),
        ("1 2 3 1\n" * 3 + "1 nan 3 1\n", r"bad\.txt: line 4: NaN or infinite value"),
    ],
    ids=["columns", "not_a_number", "incomplete_frame", "nan"],
)
def test_file_errors_name_the_file_the_line_and_what_was_expected(tmp_path, text, expected):
    bad = tmp_path / "bad.txt"
    bad.write_text(text)
    spec, _ = load_import_spec(write_spec(tmp_path / "spec.yaml", tmp_path))
    with pytest.raises(ImportFileError, match=expected):
        read_sequence(bad, spec)


def test_a_failed_import_leaves_the_previous_output_alone(tmp_path):
    msr_like(tmp_path / "raw")
    out = tmp_path / "out.pkl"
    out.write_bytes(b"earlier output")
    (tmp_path / "raw" / "a01_s01_e01.txt").write_text("1 2 3 1\n1 2\n")
    spec = write_spec(tmp_path / "spec.yaml", tmp_path / "raw")
    with pytest.raises(ImportFileError, match=r"a01_s01_e01\.txt: line 2"):
        import_dataset(spec, out)
    assert out.read_bytes() == b"earlier output"
    report = import_dataset(spec, out, skip_errors=True)
    assert len(report.failed) == 1 and "line 2" in report.failed[0]["error"] and report.samples == 15


def test_label_and_name_errors(tmp_path):
    msr_like(tmp_path / "raw", actions=(1, 2, 3))
    spec = write_spec(tmp_path / "spec.yaml", tmp_path / "raw")
    with pytest.raises(
        ImportFileError, match=r"a03_s01_e01\.txt: label field '03' is class 2 .* lists 2 classes"
    ):
        import_dataset(spec, tmp_path / "out.pkl")
    (tmp_path / "raw" / "stray.txt").write_text("1 2 3 1\n")
    spec = write_spec(
        tmp_path / "spec.yaml", tmp_path / "raw", files='files: "*.txt"', classes="classes: [a, b, c]"
    )
    with pytest.raises(ImportFileError, match=r"stray\.txt: its path 'stray\.txt' does not match .*line 7"):
        import_dataset(spec, tmp_path / "out.pkl")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"joints": "joints: twenty"}, r"line 4, key 'joints': Input should be a valid integer"),
        ({"coords": "coords: 3\ncolour: red"}, r"line 7, key 'colour': unknown key"),
        ({"classes": ""}, r"key 'classes': required key is missing"),
        (
            {"fields": 'fields: {pattern: "a{action}.txt"}'},
            r"line 7, key 'fields.pattern': no field named 'label'",
        ),
        ({"fields": 'fields: {regex: "a(?P<label>"}'}, r"line 7, key 'fields.regex': not a valid regular"),
        ({"split": "split: {by: camera, train: [1]}"}, r"line 10, key 'split.by': 'camera' is not one of"),
        (
            {"split": "split:\n  by: subject\n  train: [1, 3]\n  folds: 2"},
            r"line 10, key 'split': give exactly one",
        ),
        ({"skip_columns": "skip_columns: [3, -1]"}, r"line 3, key 'skip_columns.1': column -1 is negative"),
    ],
    ids=[
        "type",
        "unknown",
        "missing",
        "no_label",
        "bad_regex",
        "split_field",
        "split_kind",
        "negative_column",
    ],
)
def test_spec_errors_name_the_spec_the_line_and_the_key(tmp_path, change, expected):
    msr_like(tmp_path / "raw")
    spec = write_spec(tmp_path / "spec.yaml", tmp_path / "raw", **change)
    with pytest.raises(ImportSpecError, match=r"spec\.yaml: .*" + expected):
        load_import_spec(spec)


def test_split_values_that_match_nothing_are_spec_errors(tmp_path):
    msr_like(tmp_path / "raw")
    spec = write_spec(tmp_path / "spec.yaml", tmp_path / "raw", split="split: {by: subject, train: [1, 7]}")
    with pytest.raises(
        ImportSpecError, match=r"line 10, key 'split.train': subject value\(s\) \['7'\] match no"
    ):
        import_dataset(spec, tmp_path / "out.pkl")
    spec = write_spec(
        tmp_path / "spec.yaml", tmp_path / "raw", split="split: {by: subject, folds: [[1], [2, 3]]}"
    )
    with pytest.raises(ImportSpecError, match=r"subject value\(s\) \['4'\] are in no fold"):
        import_dataset(spec, tmp_path / "out.pkl")


def test_the_cli_reports_counts_drops_and_errors_in_one_line(tmp_path):
    msr_like(tmp_path / "raw")
    np.savetxt(tmp_path / "raw" / "a01_s01_e01.txt", np.zeros((3 * JOINTS, 4)))
    spec = write_spec(tmp_path / "spec.yaml", tmp_path / "elsewhere")
    runner = CliRunner()
    result = runner.invoke(app, ["data", "import", str(spec), "--out", str(tmp_path / "o.pkl")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "key 'root'" in result.output and "does not exist" in result.output
    result = runner.invoke(
        app, ["data", "import", str(spec), "--root", str(tmp_path / "raw"), "--out", str(tmp_path / "o.pkl")]
    )
    assert result.exit_code == 0, result.output
    assert "dropped a01_s01_e01" in result.output and "every coordinate is zero" in result.output
    assert "imported 15 of 16 files (1 dropped, 0 failed), 2 classes (train: 7, test: 8)" in result.output


def test_an_include_list_imports_only_the_listed_sequences(tmp_path):
    msr_like(tmp_path / "raw")
    (tmp_path / "raw" / "subset.txt").write_text("a01_s01_e01\na02_s02_e02\n\na01_s03_e01\n")
    spec = write_spec(
        tmp_path / "spec.yaml", tmp_path / "raw", classes="classes: [wave, kick]\ninclude: subset.txt"
    )
    report = import_dataset(spec, tmp_path / "out.pkl")
    data = safe_load_pickle(tmp_path / "out.pkl")
    assert sorted(a["frame_dir"] for a in data["annotations"]) == [
        "a01_s01_e01",
        "a01_s03_e01",
        "a02_s02_e02",
    ]
    assert report.excluded == 13 and data["split"] == {
        "train": ["a01_s01_e01", "a01_s03_e01"],
        "test": ["a02_s02_e02"],
    }
    (tmp_path / "raw" / "subset.txt").write_text("a01_s01_e01\na09_s09_e09\n")
    with pytest.raises(
        ImportSpecError, match=r"key 'include': 1 listed id\(s\) match no file, e.g. \['a09_s09_e09'\]"
    ):
        import_dataset(spec, tmp_path / "out.pkl")
