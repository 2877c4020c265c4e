"""Family-independent training pieces: optimiser, lr schedule, BatchNorm modes, transforms, loading a run's model.

What differs between families (building the model, the loss, prediction) is each family's task in
cosegkit.tasks; `build_model`, `compute_loss`, `predict_probabilities` and `pixel_dml_loss` here are thin entry
points that ask it, kept for callers that name a family.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from cosegkit.data.transforms import PairTransform
from cosegkit.tasks import task_for
from cosegkit.tasks.base import FEATURE_CACHE_ENV, unwrap
from cosegkit.tasks.cosegnet import mine_negatives as _mine_negatives  # noqa: F401 (the tests' name)
from cosegkit.tasks.siamese_unet import pixel_dml_loss
from cosegkit.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from cosegkit.train.records import CONFIG_NAME, data_root_of_run, read_json
from cosegkit.train.settings import ModelSettings, OptimSettings, TrainSettings, settings_from_dict

__all__ = [
    "FEATURE_CACHE_ENV",
    "build_model",
    "make_optimizer",
    "make_scheduler",
    "set_train_mode",
    "train_transform",
    "eval_transform",
    "compute_loss",
    "predict_probabilities",
    "pixel_dml_loss",
    "load_trained_model",
    "missing_weights_message",
]


def build_model(ms: ModelSettings) -> nn.Module:
    """The network of ``ms.family`` (its task's build_model)."""
    return task_for(ms).build_model(ms)


def make_optimizer(model: nn.Module, optim: OptimSettings) -> torch.optim.Optimizer:
    """SGD with momentum, or AdamW; encoder parameters at lr * encoder_lr_mult (one group each, encoder first)."""
    enc, rest = [], []
    for name, p in unwrap(model).named_parameters():
        if p.requires_grad:
            (enc if name.startswith("encoder.") else rest).append(p)
    groups = [{"params": enc, "lr": optim.lr * optim.encoder_lr_mult}, {"params": rest, "lr": optim.lr}]
    groups = [g for g in groups if g["params"]]
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, optim: OptimSettings, steps_per_epoch: int,
                   epochs: int) -> tuple[torch.optim.lr_scheduler.LRScheduler, bool]:
    """(scheduler, steps_per_batch). "exponential": lr x lr_decay after each epoch (is_triplet_coseg §4.1.3), stepped
    once per epoch; "cosine": lr * (1 + cos(pi * t / T)) / 2 over the run's T = epochs * steps_per_epoch steps,
    stepped after every batch."""
    if optim.schedule == "cosine":
        total = max(1, epochs * steps_per_epoch)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: 0.5 * (1.0 + math.cos(math.pi * min(t, total) / total))), True
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=optim.lr_decay), False


def set_train_mode(model: nn.Module, freeze_bn: str) -> None:
    """model.train(), then BatchNorm layers of the encoder ("encoder") or everywhere ("all") back to eval."""
    model.train()
    if freeze_bn == "none":
        return
    scope = unwrap(model) if freeze_bn == "all" else unwrap(model).encoder
    for m in scope.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _norm(model: nn.Module) -> tuple[tuple, tuple]:
    m = unwrap(model)
    return tuple(m.input_mean), tuple(m.input_std)


def train_transform(settings: TrainSettings, model: nn.Module, cache_views: bool = True):
    """The training PairTransform of `settings` (data.augment) with the model's normalisation; `cache_views`
    as in PairTransform (False only to time the uncached pipeline: the outputs are the same)."""
    mean, std = _norm(model)
    extra = {"jitter": None} if settings.data.augment == "flip" else {}
    return PairTransform(settings.data.image_size, train=True, mean=mean, std=std, cache_views=cache_views, **extra)


def eval_transform(settings: TrainSettings, model: nn.Module):
    mean, std = _norm(model)
    return PairTransform(settings.data.image_size, train=False, mean=mean, std=std)


def compute_loss(model: nn.Module, family: str, batch: dict, settings: TrainSettings, lam: float | None,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its terms (already weighted as in the total) for one batch: the family's task's loss.

    Call it under autocast if wanted: the model runs in the ambient precision, the losses always in float32.
    """
    return task_for(family).loss(model, batch, settings, lam, generator)


def predict_probabilities(model: nn.Module, family: str, image_a: torch.Tensor, image_b: torch.Tensor):
    """(prob_a, prob_b) foreground probability maps (B, h, w) and (dec_a, dec_b) decision probabilities (B,)
    or None (no decision network): the family's task's prediction."""
    pred = task_for(family).predict(model, image_a, image_b)
    return pred.prob_a, pred.prob_b, (pred.decision_a, pred.decision_b) if pred.has_decision else None


def run_precision(settings: TrainSettings, device: torch.device) -> tuple[bool, bool]:
    """(bf16 autocast, channels-last) of a run of `settings` on `device`: `amp` / `channels_last` on CUDA,
    `amp_on_cpu` / `channels_last_on_cpu` on a CPU. Training, `evaluate` and `predict` all use it, so that a run
    is scored in the arithmetic it was trained and tested in."""
    if device.type == "cpu":
        return settings.amp_on_cpu, settings.channels_last_on_cpu
    on_cuda = device.type == "cuda"
    return settings.amp and on_cuda, settings.channels_last and on_cuda


def missing_weights_message(run_dir: Path, cfg: dict) -> str:
    """What to do about a run folder without its checkpoint (such as a committed run, whose weights git does not
    keep): the command that trains the run again, read from its config.json."""
    root = data_root_of_run(run_dir, cfg)
    layout = cfg.get("settings", {}).get("data", {}).get("dataset", "folder")
    here = root is not None and Path(root).is_dir()
    command = (f"cosegkit train --experiment {cfg.get('experiment')} --profile {cfg.get('profile')} "
               f"--seed {cfg.get('seed', 0)}" + (f" --data-root {root if here else 'DATASET_FOLDER'}" if root else "")
               + (f" --dataset {layout}" if root and layout != "folder" else "") + " --out NEW_FOLDER")
    moved = f"; it was trained on {root}, which is not here" if root and not here else ""
    return (f"{run_dir}: no {CHECKPOINT_NAME}, so no trained weights (committed results keep a run's records, not "
            f"its weights); train it first, e.g. `{command}` (its config.json lists every setting the run used"
            f"{moved})")


def load_trained_model(run_dir, device: str | None = None):
    """(settings, model in eval mode with the final weights, device) of a finished or checkpointed run; the model
    is channels-last where the run's precision on that device says so (`run_precision`)."""
    run_dir = Path(run_dir)
    cfg = read_json(run_dir / CONFIG_NAME)
    settings = settings_from_dict(cfg["settings"])
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() and settings.device != "cpu" else "cpu"))
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise FileNotFoundError(missing_weights_message(run_dir, cfg))
    model = build_model(replace(settings.model, pretrained=False))  # weights come from the checkpoint
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME, map_location=dev, required=("model",))
    model.load_state_dict(ckpt["model"])
    model = model.to(dev).eval()
    if run_precision(settings, dev)[1]:
        model = model.to(memory_format=torch.channels_last)
    return settings, model, dev
