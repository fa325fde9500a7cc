"""The one extraction-settings model: the library, the experiment config and the CLI share it, and
the settings stores and checkpoints recorded before it was a pydantic model still read back."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lightact.cli import app, extract_features_command
from lightact.config import load_config
from lightact.features.extract import ExtractionSettings

# What ``settings.to_dict()`` recorded in every store (extraction.json, each feature file) and
# checkpoint (meta["data"]["extraction"]) when the settings were a dataclass.
RECORDED = {
    "frame_encoder": "timm/resnet10t",
    "frame_weights": None,
    "frame_size": 64,
    "fps": 1.0,
    "clip_encoder": "clip3d_tiny",
    "clip_weights": "weights/x3d.safetensors",
    "clip_size": 32,
    "clip_len": 8,
    "clip_fps": 4.0,
    "clip_stride": 2.0,
}


def test_recorded_settings_read_back_unchanged():
    settings = ExtractionSettings(**RECORDED)
    assert settings.to_dict() == RECORDED
    assert list(settings.to_dict()) == list(RECORDED)
    # Integers for the rates and a Path for the weights record as before: 4 is 4.0, paths as text.
    again = ExtractionSettings(**{**RECORDED, "clip_fps": 4, "clip_weights": Path(RECORDED["clip_weights"])})
    assert again == settings and again.to_dict() == RECORDED
    assert isinstance(again.to_dict()["clip_fps"], float)


def test_every_setting_is_a_cli_option_with_the_same_default():
    options = inspect.signature(extract_features_command).parameters
    for name, field in ExtractionSettings.model_fields.items():
        assert name in options, f"extract-features has no --{name.replace('_', '-')} option"
        assert options[name].default == field.default, name


def test_config_extraction_is_the_settings_model_with_the_embedded_defaults():
    default = load_config(None, ["data.kind=longvideo"]).data.extraction
    assert isinstance(default, ExtractionSettings)
    assert (default.frame_size, default.clip_size, default.clip_fps) == (64, 32, 4.0)
    # A key the config leaves out keeps the embedded value, not the library's full-size default.
    changed = load_config(None, ["data.kind=longvideo", "data.extraction.fps=2"]).data.extraction
    assert changed == ExtractionSettings(**{**default.to_dict(), "fps": 2.0})


def test_wrong_settings_are_one_line_naming_the_setting(tmp_path):
    with pytest.raises(
        ValueError, match=r"^frame_size: Input should be greater than or equal to 1 \(got 0\)$"
    ):
        ExtractionSettings.from_values(frame_size=0)
    with pytest.raises(ValueError, match=r"^colour: not an extraction setting$"):
        ExtractionSettings.from_values(colour="red")
    args = ["extract-features", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "store"), "--clip-fps", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and not (tmp_path / "store").exists()
    assert result.output.strip() == "clip_fps: Input should be greater than 0 (got 0.0)"


def test_config_errors_name_the_extraction_key():
    from lightact.config import ConfigError

    with pytest.raises(
        ConfigError, match="data.extraction.clip_len: Input should be greater than or equal to 1"
    ):
        load_config(None, ["data.kind=longvideo", "data.extraction.clip_len=0"])
    with pytest.raises(ConfigError, match="data.extraction.colour: unknown key"):
        load_config(None, ["data.kind=longvideo", "data.extraction.colour=red"])
