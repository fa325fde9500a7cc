import pytest

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
