"""Knowledge distillation: a frozen teacher (a CNN, e.g. ConvNeXt) teaches a student (a ViT, ...).

Three losses (``distill.mode``), all means over the batch:

- ``soft`` (Hinton): ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)``;
- ``hard`` (DeiT's hard variant): ``alpha * CE(s, argmax t) + (1 - alpha) * CE(s, y)``;
- ``token`` (DeiT): the student has a class head and a distillation-token head; the class head
  learns ``y`` with weight ``1 - alpha``, the distillation head the teacher (hard or soft target)
  with weight ``alpha``. timm's distilled ViTs average the two heads at inference.

Teacher outputs come from the teacher run on each batch (``cache: online``) or from a cache
computed once (``cache: cached``). Caching and augmentation do not mix for free: a teacher's logits
are only right for the exact pixels it saw. So the cache holds the logits of ``K = cache_views``
fixed augmented views of every training image, and every epoch the data module serves one of those
K views per image (picked by ``(seed, epoch, index)``). Online, the student sees a fresh crop and
flip every epoch; cached, it sees at most K per image over the whole run (less augmentation
diversity, more risk of over-fitting on long schedules), and building the cache costs K
teacher-forward passes over the training set, repaid after about K epochs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lightact.config import DistillConfig, OptimConfig
from lightact.data.batch import Batch
from lightact.engine.module import ClassificationModule
from lightact.utils import atomic_write

log = logging.getLogger(__name__)

CACHE_FILE = "teacher_logits.safetensors"
_CACHE_META_KEY = "lightact_teacher_cache"


# --------------------------------------------------------------------------------------------------
# Losses


def _label_ce(logits: Tensor, labels: Tensor, label_smoothing: float) -> Tensor:
    if labels.is_floating_point():  # soft targets (mixup) already carry their smoothing
        return F.cross_entropy(logits, labels)
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)


def soft_kd_term(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, summed over classes, batch mean.
    The ``T^2`` keeps its gradient on the scale of the label term whatever ``T`` is."""
    t = temperature
    return (
        F.kl_div(
            F.log_softmax(student.float() / t, -1),
            F.log_softmax(teacher.float() / t, -1),
            reduction="batchmean",
            log_target=True,
        )
        * t
        * t
    )


def soft_kd_loss(
    student: Tensor,
    teacher: Tensor,
    labels: Tensor,
    alpha: float,
    temperature: float,
    label_smoothing: float = 0.0,
) -> Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)``."""
    kd = soft_kd_term(student, teacher, temperature)
    return alpha * kd + (1 - alpha) * _label_ce(student, labels, label_smoothing)


def hard_kd_loss(
    student: Tensor, teacher: Tensor, labels: Tensor, alpha: float, label_smoothing: float = 0.0
) -> Tensor:
    """``alpha * CE(student, argmax teacher) + (1 - alpha) * CE(student, labels)``."""
    kd = F.cross_entropy(student, teacher.argmax(-1))
    return alpha * kd + (1 - alpha) * _label_ce(student, labels, label_smoothing)


def token_kd_loss(
    class_logits: Tensor,
    dist_logits: Tensor,
    teacher: Tensor,
    labels: Tensor,
    alpha: float,
    temperature: float,
    target: str = "hard",
    label_smoothing: float = 0.0,
) -> Tensor:
    """DeiT: ``(1 - alpha) * CE(class head, labels) + alpha * D(distillation head, teacher)`` with
    ``D`` the cross-entropy against the teacher's argmax (``hard``) or ``T^2 * KL`` (``soft``)."""
    if target == "hard":
        kd = F.cross_entropy(dist_logits, teacher.argmax(-1))
    elif target == "soft":
        kd = soft_kd_term(dist_logits, teacher, temperature)
    else:
        raise ValueError(f"token target must be 'hard' or 'soft', not {target!r}")
    return alpha * kd + (1 - alpha) * _label_ce(class_logits, labels, label_smoothing)


# --------------------------------------------------------------------------------------------------
# Teacher


def _check_teacher_classes(teacher_classes: list[str] | None, data_classes: list[str], where: Any) -> None:
    if teacher_classes is not None and list(teacher_classes) != list(data_classes):
        raise ValueError(
            f"teacher {where} was trained on other classes than this data "
            f"({len(teacher_classes)} vs {len(data_classes)} classes; "
            f"first {teacher_classes[:3]} vs {data_classes[:3]})"
        )


def build_teacher(distill: DistillConfig, data: Any) -> nn.Module:
    """The frozen teacher, in eval mode, with the user's weights.

    ``distill.teacher_weights`` is a lightact work directory or its ``model.safetensors`` (the
    model is rebuilt from its own description, which must name ``distill.teacher`` and the data's
    classes), or a plain state dict (safetensors / torch) for ``distill.teacher`` built with the
    data's number of classes; then every tensor must fit. A random teacher teaches nothing, so
    missing weights are an error.
    """
    from lightact.engine.checkpoint import check_meta, load_model, read_meta
    from lightact.models.registry import create_model, model_entry
    from lightact.models.weights import WEIGHTS_FILE, load_pretrained

    path = distill.teacher_weights
    if path is None:
        raise ValueError(
            "distill.teacher_weights is not set: train a teacher first (e.g. lightact train "
            "convnext_tiny_synthimage) and point distill.teacher_weights at its work dir"
        )
    path = Path(path)
    file = path / WEIGHTS_FILE if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"distill.teacher_weights: no weights at {file}")
    meta = None
    if file.suffix == ".safetensors":
        try:
            meta = read_meta(file)
        except ValueError:
            meta = None  # a plain safetensors state dict
    if meta is not None:
        check_meta(meta, file)  # what the description asks for, before it is compared or built
        if meta["model"] != distill.teacher:
            raise ValueError(f"{file} holds model {meta['model']}, but distill.teacher is {distill.teacher}")
        _check_teacher_classes(meta.get("classes"), data.class_names, file)
        teacher, _ = load_model(file)
    else:
        kwargs = model_entry(distill.teacher).data_arguments(data.model_arguments())
        teacher = create_model(distill.teacher, **{**kwargs, **distill.teacher_kwargs})
        try:
            # A teacher's classifier is what it teaches: it must come from the file too.
            load_pretrained(teacher, file, head_may_differ=False, model_name=distill.teacher)
        except ValueError as err:
            raise ValueError(f"{file} does not fit teacher {distill.teacher}: {err}") from None
    return freeze(teacher)


def freeze(module: nn.Module) -> nn.Module:
    """No gradients, eval mode (dropout off, batch-norm statistics fixed)."""
    module.requires_grad_(False)
    return module.eval()


def state_digest(module: nn.Module) -> str:
    """SHA-256 of a module's tensors: the cache is valid only for exactly this teacher."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Teacher-logit cache


@torch.no_grad()
def compute_teacher_logits(
    teacher: nn.Module,
    views: Any,
    num_views: int,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    context: Any = None,
) -> Tensor:
    """Teacher logits for every item of ``views`` (a dataset of ``(image, label, sample, view)`` in
    (sample, view) order, e.g. :class:`lightact.data.image.FixedViews`), as ``[N, K, C]`` float32."""
    from lightact.data.image.dataset import collate_images

    teacher = freeze(teacher).to(device)
    loader = DataLoader(views, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_images)
    num_samples = len(views) // num_views
    out: Tensor | None = None
    for batch in loader:
        with context() if context is not None else contextlib.nullcontext():
            logits = teacher(*(x.to(device) for x in batch.inputs)).float().cpu()
        if out is None:
            out = torch.full((num_samples, num_views, logits.shape[-1]), float("nan"))
        out[batch.sample_index, batch.view_index] = logits
    if out is None or torch.isnan(out).any():
        raise RuntimeError("the teacher-logit cache is incomplete: the view dataset is empty or misordered")
    return out


def save_teacher_cache(path: Path, logits: Tensor, fingerprint: dict[str, Any], keys: list[str]) -> None:
    """``logits[sample, view]`` plus what they are valid for; ``keys`` names the samples' rows."""
    meta = {_CACHE_META_KEY: json.dumps({"fingerprint": fingerprint, "keys": keys})}
    atomic_write(path, lambda tmp: save_file({"logits": logits.contiguous()}, tmp, metadata=meta))


def load_teacher_cache(path: Path, fingerprint: dict[str, Any]) -> Tensor | None:
    """The cached logits when ``path`` exists and was built for exactly ``fingerprint``, else None."""
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_CACHE_META_KEY)
            if raw is None or json.loads(raw)["fingerprint"] != fingerprint:
                return None
            return f.get_tensor("logits")
    except (SafetensorError, OSError, json.JSONDecodeError, KeyError):
        return None


# --------------------------------------------------------------------------------------------------
# Lightning module


class DistillationModule(ClassificationModule):
    """Trains ``model`` against labels and a frozen ``teacher`` (see the module docstring).

    The teacher is not a registered sub-module: it stays out of checkpoints (resuming reloads it
    from ``distill.teacher_weights``), out of the optimiser and out of DDP, and ``train()`` cannot
    switch it out of eval mode.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        optim: OptimConfig,
        distill: DistillConfig,
        teacher: nn.Module,
    ) -> None:
        super().__init__(model, num_classes, optim)
        self.distill = distill
        object.__setattr__(self, "_teacher", freeze(teacher))
        self.cached_logits: Tensor | None = None
        if distill.mode == "token":
            if not (hasattr(model, "head_dist") and hasattr(model, "set_distilled_training")):
                raise ValueError(
                    "distill.mode 'token' needs a student with a distillation token, such as "
                    f"timm/deit_tiny_distilled_patch16_224 (got {type(model).__name__}); "
                    "use mode soft or hard for other students"
                )
            model.set_distilled_training(True)

    @property
    def teacher(self) -> nn.Module:
        return self._teacher

    def train(self, mode: bool = True) -> DistillationModule:
        super().train(mode)
        self._teacher.eval()  # Lightning calls train() at every epoch start: the teacher stays frozen
        return self

    # -- teacher outputs ------------------------------------------------------------------------

    def _teacher_on_device(self) -> nn.Module:
        if next(self._teacher.parameters()).device != self.device:
            self._teacher.to(self.device)
        return self._teacher

    @torch.no_grad()
    def teacher_logits(self, batch: Batch) -> Tensor:
        """The teacher's logits for this batch: looked up by (sample, view) when cached."""
        if self.distill.cache == "cached":
            if self.cached_logits is None:
                raise RuntimeError(
                    "distill.cache is 'cached' but the cache was not built (fit has not started)"
                )
            views = getattr(batch, "view_index", None)
            if views is None or bool((views < 0).any()):
                raise ValueError(
                    "cached teacher logits need fixed augmented views: the data module must serve "
                    "distill.cache_views views per image (data.kind: image does)"
                )
            return self.cached_logits[
                batch.sample_index.to(self.cached_logits.device), views.to(self.cached_logits.device)
            ].to(self.device)
        return self._teacher_on_device()(*batch.inputs).float()

    def build_cache(self) -> None:
        """Load the logit cache, or compute it once with the teacher (rank 0), then share it."""
        trainer = self.trainer
        data = trainer.datamodule
        if not hasattr(data, "teacher_views"):
            raise ValueError("distill.cache 'cached' needs a data module with fixed views (data.kind: image)")
        path = self.distill.cache_path or Path(trainer.default_root_dir) / CACHE_FILE
        fingerprint = {
            **data.cache_fingerprint(),
            "teacher": self.distill.teacher,
            "weights": state_digest(self._teacher),
        }
        logits = load_teacher_cache(path, fingerprint)
        if logits is None and trainer.is_global_zero:
            views = data.teacher_views()
            start = time.perf_counter()
            logits = compute_teacher_logits(
                self._teacher,
                views,
                views.views,
                batch_size=data.cfg.batch_size,
                num_workers=data.cfg.num_workers,
                device=self.device,
                context=trainer.precision_plugin.forward_context,
            )
            self.cache_seconds = time.perf_counter() - start
            keys = views.dataset.samples.keys
            save_teacher_cache(path, logits, fingerprint, keys)
            log.info(
                "teacher logits for %d views cached in %s (%.1f s)", len(views), path, self.cache_seconds
            )
        trainer.strategy.barrier("teacher-cache")
        if logits is None:
            logits = load_teacher_cache(path, fingerprint)
            if logits is None:
                raise RuntimeError(f"{path}: the teacher-logit cache written by rank 0 cannot be read")
        self.cached_logits = logits.to(self.device)

    def on_fit_start(self) -> None:
        self._teacher_on_device()
        if self.distill.cache == "cached":
            self.build_cache()

    # -- training -------------------------------------------------------------------------------

    def distillation_loss(
        self, output: Tensor | tuple[Tensor, Tensor], teacher: Tensor, labels: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(loss, logits for accuracy)`` for the configured mode."""
        d, smoothing = self.distill, self.optim.label_smoothing
        if d.mode == "token":
            if not isinstance(output, tuple):
                raise RuntimeError(
                    "a token-mode student must return (class, distillation) logits in training"
                )
            cls_logits, dist_logits = output
            loss = token_kd_loss(
                cls_logits, dist_logits, teacher, labels, d.alpha, d.temperature, d.token_target, smoothing
            )
            return loss, (cls_logits + dist_logits) / 2
        if d.mode == "hard":
            return hard_kd_loss(output, teacher, labels, d.alpha, smoothing), output
        return soft_kd_loss(output, teacher, labels, d.alpha, d.temperature, smoothing), output

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        output = self.model(*batch.inputs)
        teacher = self.teacher_logits(batch)
        loss, logits = self.distillation_loss(output, teacher, batch.labels)
        self.log_training(loss, logits, batch)
        agree = (logits.argmax(-1) == teacher.argmax(-1)).float().mean()
        self.log(
            "train/teacher_agreement",
            agree,
            on_step=False,
            on_epoch=True,
            batch_size=len(batch),
            sync_dist=True,
        )
        return loss
