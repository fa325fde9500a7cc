import warnings

import pytest
import torch

# A few seconds per epoch on one CPU core: 16 classes x 8 samples, a one-block STAR.
TINY = [
    "data.synth.samples_per_class=8",
    "data.batch_size=8",
    "model.dim=16",
    "model.depth=1",
    "model.heads=2",
    "model.dropout=0.0",
    "trainer.max_epochs=2",
    "trainer.progress_bar=false",
]


@pytest.fixture(scope="session")
def tiny_overrides():
    return list(TINY)


@pytest.fixture(scope="session")
def trained_work_dir(tmp_path_factory):
    """A tiny STAR trained for one epoch on the synthetic set (a few seconds on one core)."""
    from lightact.config import load_config
    from lightact.engine.train import train

    out = tmp_path_factory.mktemp("run") / "tiny"
    cfg = load_config(
        None, [*TINY, f"work_dir={out}", "trainer.max_epochs=1", "data.synth.samples_per_class=4"]
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: a second intra-op thread only adds overhead
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return train(cfg)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster than two
    fighting over the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def save_checkpoint():
    """``save_checkpoint(directory, model, name, kwargs, classes, data, task)`` saves ``model`` (built
    by ``create_model(name, **kwargs)``) as a training run does: its weights and the description a
    predictor reads, with ``data`` as the data module's ``inference_meta()``. Returns ``directory``."""
    from lightact.data.skeleton.layouts import get_layout
    from lightact.engine.checkpoint import save_weights
    from lightact.models.registry import model_entry

    def save(directory, model, name, kwargs, classes, data, task="classification"):
        entry = model_entry(name)
        if isinstance(kwargs.get("layout"), str):  # a run stores its layout in full, as data
            kwargs = {**kwargs, "layout": get_layout(kwargs["layout"]).to_dict()}
        meta = {
            "model": name,
            "kwargs": kwargs,
            "classes": classes,
            "modality": entry.modality,
            "input_format": entry.input_format,
            "task": task,
            "data": data,
        }
        save_weights(model, directory / "model.safetensors", meta)
        return directory

    return save


@pytest.fixture(scope="session")
def save_star(save_checkpoint):
    """``save_star(directory, layout, classes, data, dim=8)``: a small random STAR (one block, two
    heads, seed 0) on ``layout`` saved with :func:`save_checkpoint`'s description. Returns
    ``directory``."""
    from lightact.models.registry import create_model

    def save(directory, layout, classes, data, dim=8):
        torch.manual_seed(0)
        kwargs = {"num_classes": len(classes), "layout": layout.to_dict(), "in_channels": 9, "dim": dim}
        kwargs.update(depth=1, heads=2)
        model = create_model("star_64", **{**kwargs, "layout": layout})
        return save_checkpoint(directory, model, "star_64", kwargs, list(classes), data)

    return save


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fresh-environment README test (5 minutes, one file) first: with two workers the other one
    runs the rest meanwhile, instead of both waiting for it at the end."""
    items.sort(key=lambda item: item.path.name != "test_readme_commands.py")


@pytest.fixture
def fake_pose(monkeypatch):
    """PoseExtractor on fake graphs (tests/fake_pose_graphs.py) instead of MediaPipe's."""
    from fake_pose_graphs import use_fake_graphs

    return use_fake_graphs(monkeypatch)
