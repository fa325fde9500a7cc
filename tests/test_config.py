"""Experiment configs: strict validation naming the key, dotted overrides, shipped YAML files."""

from pathlib import Path

import pytest

from lightact.config import ConfigError, ExperimentConfig, dump_config, load_config, parse_override
from lightact.configs import CONFIG_DIR
from lightact.models import create_model

CONFIGS = CONFIG_DIR


def test_defaults_are_the_quickstart():
    cfg = load_config()
    assert cfg.model.name == "star_64" and cfg.data.path is None and cfg.trainer.max_epochs >= 1


def test_overrides_are_typed_and_nested():
    cfg = load_config(
        None,
        [
            "model.dim=128",
            "trainer.max_epochs=5",
            "optim.lr=3e-4",
            "data.layout=coco17",
            "trainer.gradient_clip_val=null",
        ],
    )
    assert cfg.model.kwargs == {"dim": 128}
    assert cfg.trainer.max_epochs == 5 and cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.data.layout == "coco17" and cfg.trainer.gradient_clip_val is None
    assert parse_override("data.train_transforms=[center]") == (["data", "train_transforms"], ["center"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epoch=3", r"trainer\.max_epoch: unknown key"),
        ("trainer.max_epochs=many", r"trainer\.max_epochs: .*integer"),
        ("trainer.max_epochs=0", r"trainer\.max_epochs: .*greater than or equal to 1"),
        ("optim.name=adam", r"optim\.name: .*'adamw' or 'sgd'"),
        ("model.width=3", r"model: unknown argument 'width' for model star_64"),
        ("model.dim=wide", r"model: dim: .*integer"),
        ("model.name=resnet", r"unknown model 'resnet'"),
        ("bogus=1", r"bogus: unknown key"),
        ("trainer", r"not of the form key.path=value"),
    ],
)
def test_bad_keys_and_types_are_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "typo.yaml").write_text("data:\n  batch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"data\.batch_sise: unknown key"):
        load_config(tmp_path / "typo.yaml")


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["model.name=stgcn", "model.dropout=0.1", "eval.num_clips=5"])
    dump_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and isinstance(again, ExperimentConfig)
    assert "max_epochs" in (tmp_path / "config.yaml").read_text()  # defaults are spelled out


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_parse_and_build_their_model(path):
    cfg = load_config(path)
    family = cfg.model.name.split("/")[-1].split("_")[0]  # timm/vit_tiny_patch16_224 -> vit
    assert family in path.stem.split("_"), "configs are named <model>_<dataset>[_<split>]"
    create_model(cfg.model.name, **{"num_classes": 60, **cfg.model.kwargs})


def test_data_kind_picks_the_modality_section():
    assert type(load_config().data).__name__ == "SkeletonDataConfig"  # no kind: a skeleton config
    assert type(load_config(None, ["data.kind=video"]).data).__name__ == "VideoDataConfig"
    with pytest.raises(ConfigError, match="data: .*'vido'.*expected tags"):
        load_config(None, ["data.kind=vido"])
    # A skeleton-only key under another kind is an unknown key, named without pydantic's union tag.
    with pytest.raises(ConfigError, match=r"data\.layout: unknown key"):
        load_config(None, ["data.kind=longvideo", "data.layout=ntu25"])


def test_library_models_by_name_skip_the_signature_check():
    cfg = load_config(None, ["model.name=timm/resnet18", "model.drop_rate=0.1"])
    assert cfg.model.kwargs == {"drop_rate": 0.1}
    with pytest.raises(ConfigError, match="timm has no model 'resnet_typo'"):
        load_config(None, ["model.name=timm/resnet_typo"])
    with pytest.raises(ConfigError, match="torchvision.models.video has no model"):
        load_config(None, ["model.name=tv/r4d_18"])


def test_shipped_configs_are_found_by_name_from_any_directory(tmp_path, monkeypatch):
    from lightact.config import find_config

    monkeypatch.chdir(tmp_path)
    shipped = CONFIG_DIR / "pst_xs_synth.yaml"
    for name in (
        "pst_xs_synth",
        "pst_xs_synth.yaml",
        "configs/pst_xs_synth.yaml",
        "./configs/pst_xs_synth.yaml",
    ):
        assert find_config(name) == shipped
    # A file that exists always wins over a shipped config of the same name.
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "pst_xs_synth.yaml").write_text("name: mine\n")
    assert load_config("configs/pst_xs_synth.yaml").name == "mine"
    with pytest.raises(ConfigError, match=r"no shipped config has that name.*did you mean star_synth"):
        find_config("star_synht")


def test_the_finder_looks_into_subfolders(tmp_path, monkeypatch):
    import lightact.configs as configs

    (tmp_path / "datasets").mkdir()
    (tmp_path / "layouts").mkdir()
    (tmp_path / "star_x.yaml").write_text("# Top level.\nname: x\n")
    (tmp_path / "datasets" / "msr_action3d.yaml").write_text("description: MSR Action3D spec\n")
    (tmp_path / "datasets" / "twice.yaml").write_text("a: 1\n")
    (tmp_path / "layouts" / "twice.yaml").write_text("a: 1\n")
    monkeypatch.setattr(configs, "CONFIG_DIR", tmp_path)
    assert configs.packaged_names() == ["star_x", "datasets/msr_action3d", "datasets/twice", "layouts/twice"]
    assert configs.find_packaged("msr_action3d") == tmp_path / "datasets" / "msr_action3d.yaml"
    assert (
        configs.find_packaged("configs/datasets/msr_action3d.yaml")
        == tmp_path / "datasets" / "msr_action3d.yaml"
    )
    assert configs.find_packaged("twice") is None  # two files have that stem: the folder must be named
    assert configs.find_packaged("layouts/twice") == tmp_path / "layouts" / "twice.yaml"
    assert configs.find_packaged("../star_x") is None
    assert dict(configs.catalogue()) == {
        "star_x": "Top level.",
        "datasets/msr_action3d": "MSR Action3D spec",
        "datasets/twice": "",
        "layouts/twice": "",
    }


def test_a_config_may_describe_itself(tmp_path):
    (tmp_path / "run.yaml").write_text("description: a short run\ntrainer: {max_epochs: 1}\n")
    assert load_config(tmp_path / "run.yaml").description == "a short run"


def test_package_data_ships_every_config():
    """pyproject's package-data globs match every YAML file under lightact/configs (what a wheel
    holds is checked by tests/test_readme_commands.py, which installs one)."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["lightact.configs"]
    shipped = {p for pattern in globs for p in CONFIG_DIR.glob(pattern)}
    assert shipped == set(CONFIG_DIR.rglob("*.yaml"))


def test_a_too_short_synthetic_long_video_is_a_config_error():
    """The embedded long-video set needs two 8 s events 30 s apart: a shorter video is refused
    when the config is read, naming the key, not by a traceback from the renderer."""
    with pytest.raises(ConfigError, match=r"data\.synth\.duration_s: .*greater than or equal to 48"):
        load_config(None, ["data.kind=longvideo", "data.synth.duration_s=40"])
    load_config(None, ["data.kind=longvideo", "data.synth.duration_s=48"])
