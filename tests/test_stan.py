"""STAN and its baselines: packed batches against one video at a time, heads that train, metrics."""

import math

import pytest
import torch

from lightact.config import OptimConfig
from lightact.data.batch import Batch
from lightact.engine.regression import RegressionModule, regression_metrics
from lightact.models import create_model
from lightact.models.clip3d import TinyClipCNN
from lightact.models.registry import model_entry
from lightact.models.stan import STAN, PaddedIndex, time_code

FRAME_DIM, CLIP_DIM = 12, 7
MODELS = ["stan", "single_stream", "meanpool_linear"]


def videos(frame_counts, clip_counts, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for nf, nc in zip(frame_counts, clip_counts, strict=True):
        out.append(
            (
                torch.randn(nf, FRAME_DIM, generator=g),
                torch.arange(nf, dtype=torch.float32) * 1.0,
                torch.randn(nc, CLIP_DIM, generator=g),
                torch.arange(nc, dtype=torch.float32) * 2.0 + 1.0,
            )
        )
    return out


def pack(items):
    return (
        torch.cat([v[0] for v in items]),
        torch.cat([v[1] for v in items]),
        torch.tensor([len(v[0]) for v in items]),
        torch.cat([v[2] for v in items]),
        torch.cat([v[3] for v in items]),
        torch.tensor([len(v[2]) for v in items]),
    )


def build(name, **kwargs):
    torch.manual_seed(0)
    extra = {} if name == "meanpool_linear" else {"dim": 32, "heads": 4}
    return create_model(name, num_classes=5, frame_dim=FRAME_DIM, clip_dim=CLIP_DIM, **extra, **kwargs).eval()


@pytest.mark.parametrize("name", MODELS)
def test_packed_batch_equals_each_video_alone(name):
    # Very different lengths, and a video without any clip (shorter than one clip).
    items = videos([3, 40, 17, 1], [2, 25, 0, 9])
    model = build(name)
    with torch.no_grad():
        packed = model(*pack(items))
        alone = torch.cat([model(*pack([v])) for v in items])
    assert packed.shape == (4, 5)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_changing_one_video_leaves_the_others_untouched(name):
    items = videos([8, 30, 12], [4, 15, 6])
    model = build(name)
    with torch.no_grad():
        before = model(*pack(items))
        # New features (not an affine map of the old ones, which the input LayerNorm would undo).
        other = videos([30], [15], seed=1)[0]
        items[1] = (other[0], items[1][1], other[2], items[1][3])
        after = model(*pack(items))
    torch.testing.assert_close(before[[0, 2]], after[[0, 2]], atol=1e-5, rtol=0)
    assert (before[1] - after[1]).abs().max() > 1e-4


def test_padded_index_round_trip_and_mask():
    index = PaddedIndex(torch.tensor([2, 0, 3]))
    x = torch.arange(5.0)[:, None]
    padded = index.pad(x)
    assert padded.shape == (3, 3, 1)
    assert padded[:, :, 0].tolist() == [[0, 1, 0], [0, 0, 0], [2, 3, 4]]
    assert index.mask.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    torch.testing.assert_close(index.unpad(padded), x)


def test_stan_depends_on_the_order_of_events_not_only_their_content():
    # Swapping two clips' times (the same features, other order) must change the output: the time
    # code reaches the class token. Mean pooling, by design, cannot tell.
    items = videos([10], [6])
    frames, frame_times, clips, clip_times = items[0]
    swapped = clip_times.clone()
    swapped[[0, 5]] = swapped[[5, 0]]
    for name, sensitive in [("stan", True), ("single_stream", True), ("meanpool_linear", False)]:
        model = build(name)
        with torch.no_grad():
            a = model(*pack([(frames, frame_times, clips, clip_times)]))
            b = model(*pack([(frames, frame_times, clips, swapped)]))
        assert ((a - b).abs().max() > 1e-5) == sensitive, name


def test_cross_depth_and_wrong_inputs():
    model = STAN(
        num_classes=3, frame_dim=FRAME_DIM, clip_dim=CLIP_DIM, dim=16, heads=2, depth=1, cross_depth=3
    )
    assert len(model.static_cross) == 3
    inputs = list(pack(videos([4], [2])))
    inputs[0] = torch.randn(4, FRAME_DIM + 1)
    with pytest.raises(ValueError, match="frame features must be"):
        model(*inputs)
    inputs = list(pack(videos([4], [2])))
    inputs[5] = torch.tensor([3])
    with pytest.raises(ValueError, match="clip lengths sum to 3"):
        model(*inputs)


def test_time_code_shape_and_values():
    code = time_code(torch.tensor([0.0, 1.0]), 7)
    assert code.shape == (2, 7)
    assert code[0, :3].abs().max() == 0  # sin(0)
    assert torch.allclose(code[1, 0], torch.tensor(0.0), atol=1e-5)  # sin(2 pi * 1 s / 1 s)


def toy_task(num, regression, seed=0):
    """Labels from the features: class = sign pattern of the mean of the first two frame dims; the
    regression target = 2 * mean of frame dim 0 + mean of clip dim 0."""
    g = torch.Generator().manual_seed(seed)
    items, labels = [], []
    for _ in range(num):
        nf, nc = int(torch.randint(3, 12, (1,), generator=g)), int(torch.randint(1, 6, (1,), generator=g))
        shift = torch.randn(FRAME_DIM, generator=g)
        frames = torch.randn(nf, FRAME_DIM, generator=g) * 0.3 + shift
        clips = torch.randn(nc, CLIP_DIM, generator=g)
        items.append((frames, torch.arange(nf) * 1.0, clips, torch.arange(nc) * 2.0))
        if regression:
            labels.append(float(2 * frames[:, 0].mean() + clips[:, 0].mean()))
        else:
            labels.append(int(frames[:, 0].mean() > 0) * 2 + int(frames[:, 1].mean() > 0))
    dtype = torch.float32 if regression else torch.long
    return Batch(pack(items), torch.tensor(labels, dtype=dtype), torch.arange(num))


@pytest.mark.parametrize("name", MODELS)
def test_classification_head_trains(name):
    batch = toy_task(48, regression=False)
    torch.manual_seed(0)
    extra = {} if name == "meanpool_linear" else {"dim": 32, "heads": 4, "dropout": 0.0, "head_dropout": 0.0}
    model = create_model(name, num_classes=4, frame_dim=FRAME_DIM, clip_dim=CLIP_DIM, **extra)
    # One linear layer learns slower per step than a transformer at the same rate.
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2 if name == "meanpool_linear" else 3e-3)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(*batch.inputs), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        accuracy = (model(*batch.inputs).argmax(1) == batch.labels).float().mean().item()
    assert losses[-1] < 0.5 * losses[0]
    assert accuracy >= 0.9


@pytest.mark.parametrize("name", MODELS)
def test_regression_head_trains_with_the_regression_module(name):
    batch = toy_task(48, regression=True)
    mean, std = float(batch.labels.mean()), float(batch.labels.std())
    torch.manual_seed(0)
    extra = {} if name == "meanpool_linear" else {"dim": 32, "heads": 4, "dropout": 0.0, "head_dropout": 0.0}
    model = create_model(
        name,
        num_classes=1,
        frame_dim=FRAME_DIM,
        clip_dim=CLIP_DIM,
        task="regression",
        target_mean=mean,
        target_std=std,
        **extra,
    )
    module = RegressionModule(model, 1, OptimConfig(lr=3e-3))
    with torch.no_grad():
        first = module(batch)
    # Zero-initialised head: the untrained model predicts the training mean, in target units.
    torch.testing.assert_close(first, torch.full((48, 1), mean), atol=1e-5, rtol=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(80):
        loss = module.training_loss(module(batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(module(batch).squeeze(1), batch.labels).item()
    assert mse < 0.3 * std**2


def test_regression_metrics_exact_values():
    preds = torch.tensor([[1.0, 0.0], [2.0, 1.0], [4.0, 2.0]])
    targets = torch.tensor([[1.0, 1.0], [3.0, 1.0], [5.0, 1.0]])
    m = regression_metrics(preds, targets, ["like", "views"])
    assert m["per_target"][0]["mse"] == pytest.approx(2 / 3)
    assert m["per_target"][0]["mae"] == pytest.approx(2 / 3)
    # like: targets 1, 3, 5 (variance 8/3) -> R^2 = 1 - (2/3) / (8/3) = 0.75
    assert m["per_target"][0]["r2"] == pytest.approx(0.75)
    assert m["per_target"][1]["mse"] == pytest.approx(2 / 3)
    assert m["per_target"][1]["r2"] is None  # constant targets: R^2 undefined, not a made-up number
    assert m["mse"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(2 / 3))
    assert m["num_samples"] == 3
    with pytest.raises(ValueError, match="target names"):
        regression_metrics(preds, targets, ["one"])


def test_registry_entries_and_tiny_clip_encoder():
    for name in MODELS:
        entry = model_entry(name)
        assert (entry.modality, entry.input_format) == ("longvideo", "features")
    assert model_entry("clip3d_tiny").modality == "video"
    model = TinyClipCNN(num_classes=3)
    assert model(torch.randn(2, 3, 8, 32, 32)).shape == (2, 3)
    assert model.forward_features(torch.randn(1, 3, 5, 20, 24)).shape == (1, model.num_features)


def test_relative_time_buckets():
    from lightact.models.stan import relative_time_bucket

    dt = torch.tensor([float("nan"), 0.0, 0.3, -0.3, -0.7, 0.7, -1.5, 3.0, 40.0, -100.0, 1000.0])
    # 40 s after: [32, 64) -> 2 + 6 + 8; 100 s before: >= 64 s -> 2 + 7
    assert relative_time_bucket(dt).tolist() == [0, 1, 1, 1, 2, 10, 3, 12, 16, 9, 17]


@pytest.mark.parametrize("name", ["stan", "single_stream"])
def test_weights_written_with_the_unused_context_norms_still_load(name):
    # Before, every self-attention layer held a context norm it never ran; such files load (the
    # unused weights are dropped) and give the same outputs.
    model = build(name)
    state = model.state_dict()
    self_blocks = {k.removesuffix("norm_q.weight") for k in state if k.endswith("norm_q.weight")}
    self_blocks -= {k.removesuffix("norm_kv.weight") for k in state if k.endswith("norm_kv.weight")}
    assert self_blocks  # every model here has self-attention layers
    old = dict(state)
    for prefix in self_blocks:
        old[prefix + "norm_kv.weight"], old[prefix + "norm_kv.bias"] = torch.ones(32), torch.zeros(32)
    again = build(name)
    with torch.no_grad():
        for param in again.parameters():
            param.add_(1.0)
    again.load_state_dict(old)  # strict
    inputs = pack(videos([3, 5], [2, 1]))
    with torch.no_grad():
        assert torch.equal(again(*inputs), model(*inputs))


def test_a_self_attention_layer_refuses_a_context_and_a_cross_layer_needs_one():
    model = build("stan")
    x, index = torch.randn(4, 32), None
    with pytest.raises(ValueError, match="cross block needs a context"):
        model.static_blocks[0](x, index, context=x)
    with pytest.raises(ValueError, match="cross block needs a context"):
        model.static_cross[0](x, index)
