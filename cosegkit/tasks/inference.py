"""Inference on a trained run for the notebooks' figures: test pairs, predicted masks, pixel embeddings.

Predictions are the run's task's (cosegkit.tasks) over the run's test-time views, as in `cosegkit evaluate`:
probabilities mapped back to each image's original size (bilinear, then the threshold) and, for CoSegNet, gated by
its decision (§3.5).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from cosegkit.data.transforms import resize_to_original
from cosegkit.models.cosegnet import decision_gate
from cosegkit.tasks import build_run_data, task_for
from cosegkit.train.evaluate import eval_views, run_thresholds
from cosegkit.train.modeling import eval_transform, load_trained_model
from cosegkit.train.records import data_root_of_run

__all__ = ["test_samples", "predict_samples", "pixel_embeddings"]


def test_samples(result, n_positive: int = 4, n_negative: int = 2) -> tuple[list[dict], list[dict]]:
    """The first test pairs of a run (positive, negative) as PairSample dicts, for the visual-result figures."""
    data_root = data_root_of_run(result.run_dir)
    data = build_run_data(result.settings, data_root)
    positive = [data.test_positive[i] for i in range(min(n_positive, len(data.test_positive)))]
    negatives = data.test_negative if data.test_negative is not None else []
    negative = [negatives[i] for i in range(min(n_negative, len(negatives)))]
    return positive, negative


def predict_samples(result, samples, threshold: float | None = None) -> list[dict]:
    """Predicted masks at each image's original size (CoSegNet's gated by its decision), per PairSample; at the
    run's own thresholds (`evaluate.run_thresholds`) unless `threshold` is given (then for masks and decisions)."""
    settings, model, device = load_trained_model(result.run_dir)
    threshold, decision_threshold = ((threshold, threshold) if threshold is not None
                                     else run_thresholds(result.run_dir, settings))
    task = task_for(settings)
    transform = eval_transform(settings, model)
    outputs = []
    for sample in samples:
        item = transform(sample)
        pred = task.predict_views(model, item["image_a"][None].to(device), item["image_b"][None].to(device),
                                  threshold=decision_threshold, **eval_views(settings))
        pred_a = resize_to_original(pred.prob_a[0].cpu(), item["orig_size_a"], threshold=threshold)
        pred_b = resize_to_original(pred.prob_b[0].cpu(), item["orig_size_b"], threshold=threshold)
        decision_probs = None
        if pred.has_decision:
            decision_probs = (float(pred.decision_a[0]), float(pred.decision_b[0]))
            pred_a = pred_a & decision_gate(decision_probs[0], decision_threshold)
            pred_b = pred_b & decision_gate(decision_probs[1], decision_threshold)
        outputs.append({"pred_a": np.asarray(pred_a, dtype=bool), "pred_b": np.asarray(pred_b, dtype=bool),
                        "decision": decision_probs})
    return outputs


def pixel_embeddings(result, samples) -> list[dict]:
    """Per PairSample image A: the model-resolution image, its mask and the (H, W, D) pixel embedding."""
    settings, model, device = load_trained_model(result.run_dir)
    task = task_for(settings)
    if not task.has_pixel_embeddings:
        raise ValueError(f"{result.experiment} is a {settings.model.family} run; pixel embeddings need a SiameseUNet")
    transform = eval_transform(settings, model)
    outputs = []
    with torch.no_grad():
        for sample in samples:
            item = transform(sample)
            embedding = task.pixel_embedding(model, item["image_a"][None].to(device), item["image_b"][None].to(device))
            if embedding is None:
                raise ValueError(f"{result.experiment} uses the original head, which has no pixel embedding")
            height, width = item["image_a"].shape[-2:]
            image = np.asarray(Image.fromarray(sample["image_a"]).resize((width, height), Image.BILINEAR))
            outputs.append({
                "image": image,
                "mask": item["mask_a"].numpy() > 0.5,
                "embedding": embedding[0].permute(1, 2, 0).cpu().numpy(),
            })
    return outputs
