"""STAR under torch.compile: one graph for every batch (no recompilation for new clip lengths or
clip counts), the same values and gradients as eager, and the attention operator's hand-written
backward against autograd's."""

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from lightact.data.skeleton.batching import pack_clips
from lightact.models.layers.linear_attention import (
    attend_frames,
    attend_frames_backward,
    segmented_linear_attention,
)
from lightact.models.star import STAR


def random_batch(lengths, seed):
    g = torch.Generator().manual_seed(seed)
    return pack_clips([torch.randn(n, 25, 9, generator=g) for n in lengths])


# Different clip counts and lengths, a one-frame clip, equal lengths (the batched path).
BATCHES = ([12, 30, 7], [9, 1, 40, 22, 5], [16, 16, 16, 16], [33, 2])


@pytest.mark.parametrize("frames", [1, 2, 17])
def test_hand_written_backward_equals_autograd(frames):
    torch.manual_seed(0)
    q, k = (torch.randn(frames, 6, 8).exp().requires_grad_() for _ in range(2))  # positive, as φ gives
    v = torch.randn(frames, 6, 8, requires_grad=True)
    grad = torch.randn(frames, 6, 8)
    expected = torch.autograd.grad(attend_frames(q, k, v, 1e-6), (q, k, v), grad)
    for got, want in zip(attend_frames_backward(grad, q, k, v, 1e-6), expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("segment_length", [None, 4])
def test_attention_operator_registrations_are_consistent(segment_length):
    """torch.library's own check of the operator: schema, fake (shape-only) kernel, autograd
    registration and its use under AOT autograd with dynamic shapes."""
    torch.manual_seed(1)
    lengths = torch.tensor([5, 1, 9])
    q, k = (torch.randn(15, 4, 8).exp().requires_grad_() for _ in range(2))
    v = torch.randn(15, 4, 8, requires_grad=True)
    torch.library.opcheck(segmented_linear_attention, (q, k, v, lengths, segment_length, 1e-6))


@pytest.mark.parametrize(
    "options", [{}, {"segment_length": 8}, {"temporal_kernel": 5, "joint_embedding": True}],
    ids=["paper", "segments", "real-data-options"],
)  # fmt: skip
def test_compiled_packed_model_never_recompiles_and_equals_eager(options):
    torch.manual_seed(2)
    model = STAR(num_classes=7, dim=32, depth=2, heads=4, **options).eval()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, dynamic=True)
    graphs = []
    for seed, lengths in enumerate(BATCHES):
        x, clip_ids = random_batch(lengths, seed)
        labels = torch.arange(len(lengths)) % 7
        out = compiled(x, clip_ids)
        loss = torch.nn.functional.cross_entropy(out, labels)
        compiled_grads = torch.autograd.grad(loss, list(model.parameters()))
        expected = model(x, clip_ids)
        eager_grads = torch.autograd.grad(
            torch.nn.functional.cross_entropy(expected, labels), list(model.parameters())
        )
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        for got, want in zip(compiled_grads, eager_grads, strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        graphs.append(counter.frame_count)
    # Whatever the first batch compiled serves every later one.
    assert graphs[0] >= 1 and graphs[-1] == graphs[0], graphs
