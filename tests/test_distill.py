"""Knowledge distillation: the losses against their formulas, the teacher cache, token mode, training."""

from __future__ import annotations

import math

import lightning as L
import pytest
import timm
import torch
from torch import nn

from lightact.config import DistillConfig, OptimConfig, build_config
from lightact.data.batch import Batch
from lightact.engine.datamodule import build_datamodule
from lightact.engine.distill import (
    DistillationModule,
    build_teacher,
    compute_teacher_logits,
    hard_kd_loss,
    load_teacher_cache,
    save_teacher_cache,
    soft_kd_loss,
    token_kd_loss,
)

STUDENT = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
TEACHER = [[2.0, 1.0, 0.0], [1.0, 0.5, 2.5]]
LABELS = [1, 2]


def _softmax(row, t=1.0):
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def _ce(row, target):
    return -math.log(_softmax(row)[target])


def _kl_t2(s_row, t_row, t):
    p, q = _softmax(t_row, t), _softmax(s_row, t)
    return t * t * sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


def _mean(values):
    return sum(values) / len(values)


def test_soft_loss_equals_formula():
    alpha, t = 0.7, 3.0
    expected = _mean(
        [
            alpha * _kl_t2(s, te, t) + (1 - alpha) * _ce(s, y)
            for s, te, y in zip(STUDENT, TEACHER, LABELS, strict=True)
        ]
    )
    got = soft_kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), alpha, t)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # Hand-computed value of the first row's KD term (T=3), so the helpers above are checked too.
    # p = softmax([2, 1, 0] / 3) = [.4485, .3213, .2302], q = softmax([1, 2, .5] / 3) = [.3085, .4305, .2610]:
    # 9 * sum(p * ln(p / q)) = 9 * (.1678 - .0940 - .0289) = 0.404.
    assert _kl_t2(STUDENT[0], TEACHER[0], 3.0) == pytest.approx(0.4042, abs=1e-3)


def test_hard_loss_equals_formula():
    alpha = 0.4
    teacher_argmax = [0, 2]
    expected = _mean(
        [
            alpha * _ce(s, a) + (1 - alpha) * _ce(s, y)
            for s, a, y in zip(STUDENT, teacher_argmax, LABELS, strict=True)
        ]
    )
    got = hard_kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), alpha)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # alpha = 1: pure cross-entropy against the teacher's argmax.
    pure = hard_kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS), 1.0)
    assert pure.item() == pytest.approx(_mean([_ce(STUDENT[0], 0), _ce(STUDENT[1], 2)]), rel=1e-6)


def test_token_loss_equals_formula():
    cls_logits, dist_logits = torch.tensor(STUDENT), torch.tensor([[0.0, 1.0, 2.0], [1.0, 1.0, -1.0]])
    teacher, labels = torch.tensor(TEACHER), torch.tensor(LABELS)
    hard = token_kd_loss(cls_logits, dist_logits, teacher, labels, 0.5, 2.0, "hard")
    expected = _mean(
        [
            0.5 * _ce(d, a) + 0.5 * _ce(c, y)
            for c, d, a, y in zip(STUDENT, dist_logits.tolist(), [0, 2], LABELS, strict=True)
        ]
    )
    assert hard.item() == pytest.approx(expected, rel=1e-6)
    soft = token_kd_loss(cls_logits, dist_logits, teacher, labels, 0.3, 2.0, "soft")
    expected = _mean(
        [
            0.3 * _kl_t2(d, te, 2.0) + 0.7 * _ce(c, y)
            for c, d, te, y in zip(STUDENT, dist_logits.tolist(), TEACHER, LABELS, strict=True)
        ]
    )
    assert soft.item() == pytest.approx(expected, rel=1e-5)


def test_label_smoothing_applies_to_the_label_term_only():
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    smoothed = soft_kd_loss(s, t, y, 1.0, 2.0, label_smoothing=0.3)
    assert smoothed.item() == pytest.approx(soft_kd_loss(s, t, y, 1.0, 2.0).item())


# --------------------------------------------------------------------------------------------------
# Teacher, cache and training on tiny synthetic data


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 14) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def _experiment(tmp_path, mode="soft", cache="online", model="timm/vit_tiny_patch16_224"):
    return build_config(
        {
            "name": "kd_test",
            "work_dir": str(tmp_path / "run"),
            "data": {
                "kind": "image",
                "img_size": 32,
                "batch_size": 8,
                "synth": {"samples_per_class": 3, "size": 32},
            },
            "model": {"name": model},
            "distill": {"mode": mode, "cache": cache, "cache_views": 2, "alpha": 0.5, "temperature": 2.0},
        }
    )


def _student(token: bool = False) -> nn.Module:
    name = "deit_tiny_distilled_patch16_224" if token else "vit_tiny_patch16_224"
    return timm.create_model(
        name, pretrained=False, num_classes=14, img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2
    )


def test_cached_logits_equal_online_teacher(tmp_path):
    torch.manual_seed(0)
    cfg = _experiment(tmp_path, cache="cached")
    data = build_datamodule(cfg, "image")
    teacher = TinyCNN().eval()
    views = data.teacher_views()
    cache = compute_teacher_logits(teacher, views, views.views, batch_size=5)
    assert cache.shape == (data.dataset("train", True).num_samples, 2, 14)
    train = data.dataset("train", train=True)
    batch = data.collate([train[(3, i)] for i in range(len(train))])
    with torch.no_grad():
        online = teacher(*batch.inputs)
    assert torch.allclose(cache[batch.sample_index, batch.view_index], online, atol=1e-5)

    fingerprint = {**data.cache_fingerprint(), "teacher": "tiny"}
    path = tmp_path / "cache.safetensors"
    save_teacher_cache(path, cache, fingerprint, train.samples.keys)
    assert torch.equal(load_teacher_cache(path, fingerprint), cache)
    assert load_teacher_cache(path, {**fingerprint, "views": 3}) is None  # built for other views


def test_token_mode_shapes_and_head_averaging():
    student = _student(token=True)
    module = DistillationModule(student, 14, OptimConfig(), DistillConfig(mode="token"), TinyCNN())
    x = torch.randn(3, 3, 32, 32)
    module.train()
    cls_logits, dist_logits = module.model(x)
    assert cls_logits.shape == dist_logits.shape == (3, 14)
    module.eval()
    with torch.no_grad():
        tokens = student.forward_features(x)
        expected = (student.head(tokens[:, 0]) + student.head_dist(tokens[:, 1])) / 2
        assert torch.allclose(
            module(Batch((x,), torch.zeros(3, dtype=torch.long), torch.arange(3))), expected, atol=1e-5
        )
    with pytest.raises(ValueError, match="distillation token"):
        DistillationModule(_student(), 14, OptimConfig(), DistillConfig(mode="token"), TinyCNN())


def test_teacher_is_frozen_and_stays_in_eval():
    teacher = TinyCNN().train()
    module = DistillationModule(_student(), 14, OptimConfig(), DistillConfig(), teacher)
    module.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert not any(n.startswith("_teacher") or "teacher" in n for n in module.state_dict())


@pytest.mark.parametrize(
    ("mode", "cache"), [("soft", "online"), ("hard", "online"), ("token", "online"), ("soft", "cached")]
)
def test_student_trains_under_each_mode(tmp_path, mode, cache):
    torch.manual_seed(0)
    cfg = _experiment(tmp_path, mode, cache)
    data = build_datamodule(cfg, "image")
    teacher = TinyCNN()
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = _student(token=mode == "token")
    student_before = {k: v.clone() for k, v in student.state_dict().items()}
    module = DistillationModule(student, 14, OptimConfig(lr=1e-3), cfg.distill, teacher)
    trainer = L.Trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path / "run",
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=data)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert any(not torch.equal(student_before[k], v) for k, v in student.state_dict().items())
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())  # BN stats too
    assert not teacher.training
    if cache == "cached":
        assert (tmp_path / "run" / "teacher_logits.safetensors").is_file()
        assert module.cached_logits.shape == (data.dataset("train", True).num_samples, 2, 14)


def test_build_teacher_needs_fitting_weights(tmp_path):
    cfg = _experiment(tmp_path)
    data = build_datamodule(cfg, "image")
    with pytest.raises(ValueError, match="teacher_weights is not set"):
        build_teacher(DistillConfig(teacher="timm/convnext_atto"), data)
    from safetensors.torch import save_file

    teacher = timm.create_model("convnext_atto", pretrained=False, num_classes=14)
    save_file(teacher.state_dict(), tmp_path / "teacher.safetensors")
    built = build_teacher(
        DistillConfig(teacher="timm/convnext_atto", teacher_weights=tmp_path / "teacher.safetensors"), data
    )
    assert not built.training
    assert torch.equal(built.state_dict()["head.fc.weight"], teacher.state_dict()["head.fc.weight"])
    other = timm.create_model("convnext_atto", pretrained=False, num_classes=5)
    save_file(other.state_dict(), tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="does not fit teacher"):
        build_teacher(
            DistillConfig(teacher="timm/convnext_atto", teacher_weights=tmp_path / "other.safetensors"), data
        )
