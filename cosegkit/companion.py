"""What the notebooks share: run (or reuse) registered experiments, and predict with a trained run.

Their numbers are collected into tables by ``cosegkit.tables``; a notebook's parameters are read by
``cosegkit.notebook_params``.

Runs are keyed by what they are, not by the name of the experiment that asked for them: a run lives in
``<output_dir>/runs/<profile>/<data tag>/<slug>-s<seed>-<key>``, where ``key`` is a digest of every setting that
changes what is trained (see :func:`run_key`) and ``slug`` says the main ones (family, head, losses, metric layer,
single-image). Two experiments with the same settings (``pixel-dml-none`` and ``unet-dice-embedding``, say) are
one run, trained once and read by every table that needs it, under each experiment's own name.
`run_experiments` resumes each run, so a finished run is read back from disk instead of trained again. That is
how notebooks 02-05 share runs and how ``cosegkit reproduce`` resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from cosegkit.notebook_params import data_tag

__all__ = [
    "run_dir_for",
    "run_key",
    "run_slug",
    "run_splits",
    "run_experiments",
    "test_samples",
    "predict_samples",
    "pixel_embeddings",
]

# Settings that name or describe a run without changing what it trains.
_NOT_IN_KEY = ("experiment", "description", "progress", "deviations")


def run_key(settings) -> str:
    """10 hex digits of a SHA-256 over the settings that decide what a run trains: everything except its name,
    description, progress bars and the deviations text, with ``data.split_seed=None`` written as the seed it
    stands for (so ``unet-dice`` and ``pixel-dml-none --set data.split_seed=0`` at seed 0 share a key when their
    other settings agree)."""
    from cosegkit.train.settings import settings_to_dict

    record = {k: v for k, v in settings_to_dict(settings).items() if k not in _NOT_IN_KEY}
    if record["data"].get("split_seed") is None:
        record["data"]["split_seed"] = record["seed"]
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:10]


def run_slug(settings) -> str:
    """A readable summary of a run's main settings: family, head or metric layer, losses, single-image."""
    model, loss = settings.model, settings.loss
    if model.family == "unet":
        parts = ["unet", model.head, loss.seg] + ([loss.dml] if loss.dml else [])
    elif model.family == "cosegnet":
        parts = ["cosegnet", model.metric_layer]
    else:
        parts = [model.family]
    if model.single_image:
        parts.append("single")
    return "-".join(parts).lower()


def run_dir_for(output_dir, profile: str, data_root: str | None, experiment: str, seed: int,
                overrides: dict | None = None, dataset: str = "folder") -> Path:
    """Where the run of ``experiment`` at ``seed`` (with ``overrides``) lives: keyed by its settings."""
    from cosegkit.train.experiments import build_settings

    settings = build_settings(experiment, profile, seed=seed, overrides=overrides, dataset=dataset)
    name = f"{run_slug(settings)}-s{seed}-{run_key(settings)}"
    return Path(output_dir) / "runs" / profile / data_tag(data_root) / name


def run_experiments(experiments: Iterable[str], profile: str, output_dir, data_root: str | None = None,
                    seeds: Iterable[int] = (0,), overrides: dict | None = None, progress: bool = True,
                    dataset: str = "folder") -> list:
    """Train (or reuse) every experiment for every seed; returns the engine's RunResults in that order.

    A finished run with the same settings is read back (``result.extra["reused"]`` is True), whichever experiment
    trained it; the result carries the asking experiment's name. ``dataset`` names the layout of ``data_root``
    (see ``cosegkit.data.load_dataset``).
    """
    from cosegkit.train import train
    from cosegkit.train.engine import read_run_result, stored_experiment

    data_root = data_root or None
    if data_root is not None and not Path(data_root).is_dir():
        raise FileNotFoundError(f"data_root {data_root!r} is not a directory")
    results = []
    for experiment in experiments:
        for seed in seeds:
            run_overrides = {**(overrides or {}), "progress": progress}
            run_dir = run_dir_for(output_dir, profile, data_root, experiment, seed, run_overrides, dataset)
            started = time.perf_counter()
            result = read_run_result(run_dir)
            reused = result is not None
            if result is None:  # train, or resume a run that this or another experiment of the same key began
                owner = stored_experiment(run_dir) or experiment
                result = train(owner, profile, out=run_dir, data_root=data_root, seed=seed, resume=True,
                               overrides=run_overrides, dataset=dataset)
            result = _as_experiment(result, experiment)
            result.extra["reused"] = reused
            if progress:
                how = "reused" if reused else "trained"
                print(f"{experiment} seed {seed}: {how} ({run_dir.name}) in {time.perf_counter() - started:.0f} s; "
                      f"test P {100 * result.precision:.1f} J {result.jaccard:.3f}")
            results.append(result)
    return results


def run_splits(experiment: str, profile: str, output_dir, n_splits: int | None = None, data_root: str | None = None,
               seed: int = 0, overrides: dict | None = None, progress: bool = True, dataset: str = "folder") -> dict:
    """CoSegNet §4.2: ``experiment`` on ``n_splits`` random 3:1:1 splits (None: the profile's), split i with seed
    and split seed ``seed + i``, through the keyed run cache (split 0 is the run that ``run_experiments`` trains for
    that seed, so it is never trained twice). Returns the mean +- std aggregate of :func:`aggregate_splits`."""
    from cosegkit.train.engine import aggregate_splits
    from cosegkit.train.profiles import get_profile

    n = get_profile(profile).n_splits if n_splits is None else int(n_splits)
    if n < 1:
        raise ValueError(f"n_splits must be >= 1, got {n}")
    results = []
    for i in range(n):
        split_overrides = {**(overrides or {}), "data.split_seed": seed + i}
        results += run_experiments([experiment], profile, output_dir, data_root=data_root, seeds=[seed + i],
                                   overrides=split_overrides, progress=progress, dataset=dataset)
    return aggregate_splits(experiment, profile, results)


def _as_experiment(result, experiment: str):
    """The same run labelled as ``experiment`` (its registered description too)."""
    from cosegkit.train.experiments import get_experiment

    if result.settings.experiment == experiment:
        return result
    settings = replace(result.settings, experiment=experiment, description=get_experiment(experiment).description)
    return replace(result, settings=settings, extra=dict(result.extra))


def test_samples(result, n_positive: int = 4, n_negative: int = 2) -> tuple[list[dict], list[dict]]:
    """The first test pairs of a run (positive, negative) as PairSample dicts, for the visual-result figures."""
    from cosegkit.train.data import build_run_data

    data_root = json.loads((result.run_dir / "config.json").read_text()).get("data_root")
    data = build_run_data(result.settings, data_root)
    positive = [data.test_positive[i] for i in range(min(n_positive, len(data.test_positive)))]
    negatives = data.test_negative if data.test_negative is not None else []
    negative = [negatives[i] for i in range(min(n_negative, len(negatives)))]
    return positive, negative


def predict_samples(result, samples, threshold: float = 0.5) -> list[dict]:
    """Predicted masks at each image's original size (CoSegNet's gated by its decision), per PairSample."""
    from cosegkit.data.transforms import resize_to_original
    from cosegkit.train.engine import load_trained_model
    from cosegkit.train.modeling import eval_transform, predict_probabilities

    settings, model, device = load_trained_model(result.run_dir)
    transform = eval_transform(settings, model)
    outputs = []
    for sample in samples:
        item = transform(sample)
        prob_a, prob_b, decision = predict_probabilities(
            model, settings.model.family, item["image_a"][None].to(device), item["image_b"][None].to(device)
        )
        pred_a = resize_to_original(prob_a[0].cpu(), item["orig_size_a"], threshold=threshold)
        pred_b = resize_to_original(prob_b[0].cpu(), item["orig_size_b"], threshold=threshold)
        decision_probs = None
        if decision is not None:
            decision_probs = (float(decision[0][0]), float(decision[1][0]))
            pred_a = pred_a & (decision_probs[0] > threshold)
            pred_b = pred_b & (decision_probs[1] > threshold)
        outputs.append({"pred_a": np.asarray(pred_a, dtype=bool), "pred_b": np.asarray(pred_b, dtype=bool),
                        "decision": decision_probs})
    return outputs


def pixel_embeddings(result, samples) -> list[dict]:
    """Per PairSample image A: the model-resolution image, its mask and the (H, W, D) pixel embedding."""
    import torch
    from PIL import Image

    from cosegkit.train.engine import load_trained_model
    from cosegkit.train.modeling import eval_transform

    settings, model, device = load_trained_model(result.run_dir)
    if settings.model.family != "unet":
        raise ValueError(f"{result.experiment} is a {settings.model.family} run; pixel embeddings need a SiameseUNet")
    transform = eval_transform(settings, model)
    outputs = []
    with torch.no_grad():
        for sample in samples:
            item = transform(sample)
            out = model(item["image_a"][None].to(device), item["image_b"][None].to(device))
            if out["embeddings_a"] is None:
                raise ValueError(f"{result.experiment} uses the original head, which has no pixel embedding")
            height, width = item["image_a"].shape[-2:]
            image = np.asarray(Image.fromarray(sample["image_a"]).resize((width, height), Image.BILINEAR))
            outputs.append({
                "image": image,
                "mask": item["mask_a"].numpy() > 0.5,
                "embedding": out["embeddings_a"][0].permute(1, 2, 0).cpu().numpy(),
            })
    return outputs

