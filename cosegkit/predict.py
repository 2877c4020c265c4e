"""`cosegkit predict`: co-segment the user's own images with a trained run.

`predict_images(run_dir, images, out_dir)` reads image files and/or folders of images, runs the run's model on
every pairing of two of them and writes, per image and at the image's own size, a binary mask PNG and an
overlay PNG, plus `predictions.json`. `add_predict_subcommand` registers the command line (cosegkit.cli).

How an image's mask combines its pairings (COMBINATION_RULE, also in the help text and predictions.json):
with n >= 2 images every unordered pair {i, j} (i before j in input order) is run once as (A = i, B = j). For
each image the model's foreground probability maps from its pairings are averaged, mapped back to the image's
size (bilinear, as evaluation does) and thresholded at the run's mask threshold (`eval_threshold`, or the one its
training chose on validation, `threshold_selection="val"`). CoSegNet (decision network)
gates each pairing as its `predict` does (mask x thresholded decision) and the average runs over the pairings
its decision accepts only, so an outlier image in the group does not blank the others' masks; an image none of
whose pairings is accepted gets an empty mask. For two images this is exactly what `cosegkit evaluate` predicts
for that pair. One image alone is paired with itself (the decision network then sees the same image twice).
"""

from __future__ import annotations

import argparse
import sys
from itertools import combinations
from pathlib import Path

import numpy as np

from cosegkit.data.items import IGNORED_FILES, IMAGE_EXTENSIONS, decode_image
from cosegkit.data.transforms import resize_to_original
from cosegkit.models.cosegnet import decision_gate
from cosegkit.tasks import task_for
from cosegkit.train.checkpoint import CHECKPOINT_NAME
from cosegkit.train.data import single_thread
from cosegkit.train.evaluate import eval_views, run_thresholds
from cosegkit.train.modeling import eval_transform, load_trained_model, missing_weights_message, run_precision
from cosegkit.train.records import CONFIG_NAME, read_json, write_json

__all__ = ["COMBINATION_RULE", "PREDICTIONS_NAME", "collect_images", "predict_images", "add_predict_subcommand"]

PREDICTIONS_NAME = "predictions.json"
MASK_SUFFIX = "_mask.png"
OVERLAY_SUFFIX = "_overlay.png"
OVERLAY_COLOUR = (255, 0, 0)
OVERLAY_ALPHA = 0.5

COMBINATION_RULE = (
    "every unordered pair of images is run once (the earlier input as image A); an image's foreground "
    "probability is averaged over its pairings, resized to the image's size (bilinear) and thresholded at the "
    "run's mask threshold (eval_threshold, or the one chosen on validation in training); with a decision network "
    "(CoSegNet) each pairing is gated by its decision (probability > the run's decision threshold) and the "
    "average runs over the accepted pairings only (no accepted pairing: "
    "empty mask); a single image is paired with itself"
)


def _is_ignored(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in IGNORED_FILES


def collect_images(inputs) -> list[Path]:
    """Image paths from files and/or folders (a folder: its image files with a common extension, sorted by
    name; sub-folders are not searched). Raises FileNotFoundError for a missing path and ValueError for a folder
    without images or a file given twice (also via its folder)."""
    paths: list[Path] = []
    seen: dict[Path, Path] = {}
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir()
                           if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not _is_ignored(f))
            if not found:
                raise ValueError(f"{p}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        elif p.exists():
            found = [p]
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
        for f in found:
            key = f.resolve()
            if key in seen:
                raise ValueError(f"{f}: given more than once (also as {seen[key]})")
            seen[key] = f
            paths.append(f)
    if not paths:
        raise ValueError("no images given")
    return paths


def _output_names(paths: list[Path]) -> list[str]:
    """One distinct name per image: its stem, or stem-2, stem-3, ... when an earlier image took it (compared
    case-insensitively, so the files stay distinct on case-insensitive file systems too)."""
    taken: set[str] = set()
    stems = {p.stem.lower() for p in paths}
    names = []
    for p in paths:
        name, k = p.stem, 1
        while name.lower() in taken or (k > 1 and name.lower() in stems):
            k += 1
            name = f"{p.stem}-{k}"
        taken.add(name.lower())
        names.append(name)
    return names


def _decode_all(paths: list[Path]) -> list[np.ndarray]:
    images, problems = [], []
    for p in paths:
        try:
            images.append(decode_image(p))
        except (ValueError, FileNotFoundError) as e:
            problems.append(str(e) if str(e).startswith(str(p)) else f"{p}: {e}")
        except OSError as e:  # e.g. permission denied
            problems.append(f"{p}: unreadable ({e.strerror or e})")
    if problems:
        more = f" (and {len(problems) - 1} more unreadable image(s))" if len(problems) > 1 else ""
        raise ValueError(problems[0] + more)
    return images


def _resolve_device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but CUDA is not available here")
    return device


def _check_run(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    if not (run_dir / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{run_dir}: not a trained run (no {CONFIG_NAME}); train one with `cosegkit train`")
    if not (run_dir / CHECKPOINT_NAME).is_file():
        raise FileNotFoundError(missing_weights_message(run_dir, read_json(run_dir / CONFIG_NAME)))


def _check_out(out_dir: Path, overwrite: bool, inputs) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"{out_dir}: exists and is not a folder")
    for raw in inputs:
        if Path(raw).is_dir() and Path(raw).resolve() == out_dir.resolve():
            raise ValueError(f"{out_dir}: the output folder is also an input folder; choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: output folder is not empty; pass --overwrite to replace the "
                              "predictions there, or choose another --out")


def _remove_previous(out_dir: Path) -> None:
    """Before overwriting: delete the files a previous `predict` listed in out_dir/predictions.json."""
    old = out_dir / PREDICTIONS_NAME
    if not old.is_file():
        return
    try:
        listed = read_json(old).get("images", [])
        names = [Path(str(im[k])).name for im in listed for k in ("mask", "overlay") if im.get(k)]
    except (ValueError, AttributeError, TypeError):
        names = []
    for name in names:
        f = out_dir / name
        if f.is_file() and not f.is_symlink():
            f.unlink()
    old.unlink()


def _load_model(run_dir: Path, device: str):
    try:
        return load_trained_model(run_dir, device=device)
    except FileNotFoundError:
        raise
    except Exception as e:  # corrupt config / checkpoint, or weights that do not fit the model
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{run_dir}: cannot load the trained model ({first})") from e


def _model_inputs(settings, model, images: list[np.ndarray]):
    """Each image resized and normalised exactly as evaluation does (the run's eval transform)."""
    transform = eval_transform(settings, model)
    tensors = []
    with single_thread():
        for img in images:
            empty = np.zeros(img.shape[:2], dtype=bool)  # the transform wants masks; they are not used
            tensors.append(transform({"image_a": img, "image_b": img, "mask_a": empty, "mask_b": empty,
                                      "label": 1})["image_a"])
    return tensors


def _run_pairings(settings, model, device, tensors, pairings, batch_size: int, decision_threshold: float):
    """Per image: sum of (gated) foreground probability maps and number of counted pairings; per pairing: the
    decision probabilities of both sides (None without a decision network)."""
    import torch

    task = task_for(settings)
    amp, channels_last = run_precision(settings, device)  # the arithmetic the run was trained and tested in
    sums: list = [None] * len(tensors)
    counts = [0] * len(tensors)
    decisions: list = []
    for start in range(0, len(pairings), batch_size):
        chunk = pairings[start:start + batch_size]
        a = torch.stack([tensors[i] for i, _ in chunk]).to(device)
        b = torch.stack([tensors[j] for _, j in chunk]).to(device)
        if channels_last:
            a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            pred = task.predict_views(model, a, b, threshold=decision_threshold, **eval_views(settings))
        pa, pb = pred.gated()  # the model's own test-time rule (§3.5): mask x thresholded decision
        if pred.has_decision:
            acc_a, acc_b = pred.accepted_a.tolist(), pred.accepted_b.tolist()
            dps = list(zip(pred.decision_a.float().tolist(), pred.decision_b.float().tolist(), strict=True))
        else:
            acc_a = acc_b = [True] * len(chunk)
            dps = [None] * len(chunk)
        pa, pb = pa.float().cpu(), pb.float().cpu()
        for r, (i, j) in enumerate(chunk):
            sides = [(i, pa[r], acc_a[r])] + ([(j, pb[r], acc_b[r])] if j != i else [])
            for k, prob, accepted in sides:
                if accepted:
                    sums[k] = prob.clone() if sums[k] is None else sums[k] + prob
                    counts[k] += 1
            decisions.append(dps[r])
    return sums, counts, decisions


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.astype(np.float32)
    out[mask] = (1 - OVERLAY_ALPHA) * out[mask] + OVERLAY_ALPHA * np.asarray(OVERLAY_COLOUR, dtype=np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def predict_images(run_dir, images, out_dir, device: str = "auto", overwrite: bool = False,
                   batch_size: int = 8) -> dict:
    """Co-segment `images` (files and/or folders) with the trained run `run_dir`; write into `out_dir`, per
    image, `<name>_mask.png` (mode L, 0/255, the image's size) and `<name>_overlay.png` (the image with the
    mask tinted red at 50 %), and `predictions.json`; return its content.

    Combination across pairings: see COMBINATION_RULE. `<name>` is the file's stem (stem-2, ... for repeated
    stems). Everything is checked (every image decodes, the run has a checkpoint, `out_dir` is empty or
    `overwrite`) and predicted before the first file is written. `overwrite=True` writes into a non-empty
    `out_dir`, first deleting the files listed by a previous predictions.json there.

    predictions.json: run_dir, experiment, profile, family, device, threshold, combination, decision ("pair":
    one decision per pairing, "per-image": single-image CoSegNet, each side decided from its own image, None:
    no decision network), images (name, path, width, height, mask, overlay, foreground_fraction, pairings,
    accepted_pairings), pairs (image_a, image_b and, with a decision network, decision_probability and
    common_object, or decision_probability_a/_b and common_object_a/_b for "per-image").
    """
    from PIL import Image

    if int(batch_size) < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if isinstance(images, str | Path):
        images = [images]
    paths = collect_images(images)
    names = _output_names(paths)
    decoded = _decode_all(paths)
    _check_run(run_dir)
    _check_out(out_dir, overwrite, images)
    settings, model, dev = _load_model(run_dir, _resolve_device(device))
    family = settings.model.family
    threshold, decision_threshold = run_thresholds(run_dir, settings)

    n = len(paths)
    pairings = [(0, 0)] if n == 1 else list(combinations(range(n), 2))
    tensors = _model_inputs(settings, model, decoded)
    sums, counts, decisions = _run_pairings(settings, model, dev, tensors, pairings, int(batch_size),
                                            decision_threshold)
    masks = []
    for img, s, c in zip(decoded, sums, counts, strict=True):
        if c == 0:
            masks.append(np.zeros(img.shape[:2], dtype=bool))
        else:
            masks.append(resize_to_original(s / c, img.shape[:2], threshold=threshold))

    has_decision = task_for(settings).has_decision
    per_image = has_decision and settings.model.single_image
    records = []
    for k, (p, name, img, mask) in enumerate(zip(paths, names, decoded, masks, strict=True)):
        rec = {
            "name": name, "path": str(p), "width": int(img.shape[1]), "height": int(img.shape[0]),
            "mask": name + MASK_SUFFIX, "overlay": name + OVERLAY_SUFFIX,
            "foreground_fraction": float(mask.mean()),
            "pairings": sum(1 for i, j in pairings if k in (i, j)),
        }
        if has_decision:
            rec["accepted_pairings"] = counts[k]
        records.append(rec)
    pairs = []
    for (i, j), dp in zip(pairings, decisions, strict=True):
        entry: dict = {"image_a": names[i], "image_b": names[j]}
        if dp is not None and per_image:
            entry.update(decision_probability_a=dp[0], decision_probability_b=dp[1],
                         common_object_a=decision_gate(dp[0], decision_threshold),
                         common_object_b=decision_gate(dp[1], decision_threshold))
        elif dp is not None:
            entry.update(decision_probability=dp[0], common_object=decision_gate(dp[0], decision_threshold))
        pairs.append(entry)
    report = {
        "run_dir": str(run_dir.resolve()),
        "experiment": settings.experiment,
        "profile": settings.profile,
        "family": family,
        "device": str(dev),
        "threshold": threshold,
        "decision_threshold": decision_threshold if has_decision else None,
        "combination": COMBINATION_RULE,
        "decision": ("per-image" if per_image else "pair") if has_decision else None,
        "paired_with_itself": n == 1,
        "images": records,
        "pairs": pairs,
    }

    if overwrite and out_dir.is_dir():
        _remove_previous(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for rec, img, mask in zip(records, decoded, masks, strict=True):
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(out_dir / rec["mask"])
        Image.fromarray(_overlay(img, mask), mode="RGB").save(out_dir / rec["overlay"])
    write_json(out_dir / PREDICTIONS_NAME, report)  # last: its presence means the folder is complete
    return report


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=104)


HELP = f"""\
Co-segment your own images with a run trained by `cosegkit train`.

Inputs: image files and/or folders; a folder contributes its image files ({", ".join(IMAGE_EXTENSIONS)},
any case; sorted by name; sub-folders are not searched). All the images form one group. Every image is
decoded first: a missing, corrupt or unreadable image is an error naming it (exit 2), before anything is
written.

Outputs in --out, per image, at the image's own resolution: NAME{MASK_SUFFIX} (greyscale, 255 = common
object, 0 = background) and NAME{OVERLAY_SUFFIX} (the image with the mask tinted red at 50 %); NAME is
the file's stem (stem-2, stem-3, ... for repeated stems). predictions.json records the run, its experiment
and profile, the threshold, per image the foreground fraction and its file names, and per pair of images
(for CoSegNet) the decision probability that the two share a common object. --out must be empty or new
unless --overwrite (which first deletes the files a previous predictions.json there lists).

{_wrap("How an image's mask combines its pairings: " + COMBINATION_RULE + ".")}
With two images this gives the masks the run's test evaluation predicts for that pair. CoSegNet's
decision network is not symmetric in its two inputs: each pair is run once, the earlier input as image A.
"""


def add_predict_subcommand(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="co-segment your own images with a trained run (masks, overlays, predictions.json)",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file or folder of images (repeatable)")
    p.add_argument("--run", required=True, help="run directory written by `cosegkit train`")
    p.add_argument("--out", required=True, help="output folder (created; must be empty unless --overwrite)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the model runs (auto: CUDA if available, else CPU)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out, replacing a previous prediction there")
    p.add_argument("--batch-size", type=int, default=8, help="pairs per forward pass (default 8)")
    p.set_defaults(handler=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    try:
        report = predict_images(args.run, args.images, args.out, device=args.device, overwrite=args.overwrite,
                                batch_size=args.batch_size)
    except (ValueError, OSError) as e:
        print(f"cosegkit predict: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    for rec in report["images"]:
        line = f"{rec['name']}: foreground {100 * rec['foreground_fraction']:.1f}%"
        if "accepted_pairings" in rec:
            line += f", {rec['accepted_pairings']}/{rec['pairings']} pairings accepted by the decision network"
        print(line)
    if report["paired_with_itself"]:
        print("one image: paired with itself")
    print(f"wrote {len(report['images'])} masks and overlays and {out / PREDICTIONS_NAME}")
    return 0

