"""`cosegkit predict` on smoke-profile runs (SiameseUNet and CoSegNet) with the user's own images."""

from __future__ import annotations

import json
import math
import shutil
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cosegkit.cli import main
from cosegkit.data.items import decode_image
from cosegkit.predict import COMBINATION_RULE, PREDICTIONS_NAME

# (name, (H, W), format): none a multiple of 32, none square, so a mask at the model's size would be caught
IMAGES = [("a.jpg", (50, 70), "JPEG"), ("b.png", (90, 64), "PNG"), ("c.png", (33, 121), "PNG")]


def write_images(folder: Path, specs=IMAGES, seed: int = 0) -> list[Path]:
    """Noise with a bright block (something for the model to segment)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for name, (h, w), fmt in specs:
        img = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
        img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (230, 60, 40)
        Image.fromarray(img).save(folder / name, format=fmt)
        paths.append(folder / name)
    return paths


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from cosegkit.train import train

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for exp in ("unet-dice", "cosegnet", "cosegnet-single-image"):
        out[exp] = train(exp, "smoke", root / exp, overrides={"progress": False}).run_dir
    return out


@pytest.fixture(scope="module")
def open_cosegnet(runs, tmp_path_factory):
    """The smoke CoSegNet with its decision forced to "common object" (bias +100) and its mask bias shifted to
    the median logit, so that its masks are neither empty nor full: the mask path gets a real test."""
    from cosegkit.train.checkpoint import load_checkpoint, save_checkpoint
    from cosegkit.train.engine import load_trained_model
    from cosegkit.train.modeling import eval_transform

    run = tmp_path_factory.mktemp("open") / "cosegnet-open"
    shutil.copytree(runs["cosegnet"], run)
    settings, model, _ = load_trained_model(run, device="cpu")
    imgs = [decode_image(p) for p in write_images(tmp_path_factory.mktemp("probe"))]
    tf = eval_transform(settings, model)
    item = tf({"image_a": imgs[0], "image_b": imgs[1], "mask_a": np.zeros(imgs[0].shape[:2], bool),
               "mask_b": np.zeros(imgs[1].shape[:2], bool), "label": 1})
    with torch.no_grad():
        logits = model(item["image_a"][None], item["image_b"][None])["logits_a"]
    ckpt = load_checkpoint(run / "checkpoint.pt")
    ckpt["model"]["decision.2.bias"].fill_(100.0)
    ckpt["model"]["decoder.layers.cT13.bias"] -= logits.median()
    save_checkpoint(run / "checkpoint.pt", ckpt)
    return run


@pytest.fixture(scope="module")
def open_unet(runs, tmp_path_factory):
    """The smoke unet-dice (original head) with its foreground logit shifted by the median margin over the probe
    images, so that its masks are neither empty nor full: the mask path gets a real test."""
    from cosegkit.train.checkpoint import load_checkpoint, save_checkpoint
    from cosegkit.train.engine import load_trained_model
    from cosegkit.train.modeling import eval_transform

    run = tmp_path_factory.mktemp("open") / "unet-open"
    shutil.copytree(runs["unet-dice"], run)
    settings, model, _ = load_trained_model(run, device="cpu")
    imgs = [decode_image(p) for p in write_images(tmp_path_factory.mktemp("probe"))]
    item = eval_transform(settings, model)({"image_a": imgs[0], "image_b": imgs[1], "label": 1,
                                            "mask_a": np.zeros(imgs[0].shape[:2], bool),
                                            "mask_b": np.zeros(imgs[1].shape[:2], bool)})
    with torch.no_grad():
        logits = model(item["image_a"][None], item["image_b"][None])["logits_a"]
    margin = (logits[:, 1] - logits[:, 0]).median()
    ckpt = load_checkpoint(run / "checkpoint.pt")
    ckpt["model"]["decoder.layer6.bias"][1] -= margin
    save_checkpoint(run / "checkpoint.pt", ckpt)
    return run


def predict(run, inputs, out, *extra) -> int:
    return main(["predict", "--run", str(run), *[str(p) for p in inputs], "--out", str(out), "--device", "cpu",
                 *extra])


def read_predictions(out: Path) -> dict:
    return json.loads((out / PREDICTIONS_NAME).read_text())


def check_outputs(out: Path, paths: list[Path], names: list[str]) -> dict:
    """One mask (L, {0,255}) and one overlay (RGB, mask tinted red at 50 %) per image at its own size, fractions
    in predictions.json that match the mask files, and nothing else in the folder."""
    pred = read_predictions(out)
    expected = {PREDICTIONS_NAME} | {f"{n}_mask.png" for n in names} | {f"{n}_overlay.png" for n in names}
    assert {p.name for p in out.iterdir()} == expected
    assert [im["name"] for im in pred["images"]] == names
    for path, rec in zip(paths, pred["images"], strict=True):
        image = decode_image(path)
        h, w = image.shape[:2]
        assert (rec["width"], rec["height"]) == (w, h)
        mask_im = Image.open(out / rec["mask"])
        assert mask_im.mode == "L" and mask_im.size == (w, h)
        mask = np.asarray(mask_im)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        assert math.isclose(rec["foreground_fraction"], (mask == 255).mean(), abs_tol=1e-12)
        overlay_im = Image.open(out / rec["overlay"])
        assert overlay_im.mode == "RGB" and overlay_im.size == (w, h)
        overlay = np.asarray(overlay_im).astype(int)
        fg = mask == 255
        assert np.array_equal(overlay[~fg], image[~fg])
        tinted = np.rint(0.5 * image[fg] + 0.5 * np.array([255, 0, 0])).astype(int)
        assert np.abs(overlay[fg] - tinted).max(initial=0) <= 1
    return pred


@pytest.mark.parametrize("exp", ["unet-dice", "cosegnet"])
def test_one_mask_and_overlay_per_image_at_its_own_size(runs, exp, tmp_path, capsys):
    from cosegkit.train.engine import load_trained_model

    paths = write_images(tmp_path / "imgs")
    out = tmp_path / "out"
    assert predict(runs[exp], [tmp_path / "imgs"], out) == 0
    assert "predictions.json" in capsys.readouterr().out
    pred = check_outputs(out, paths, ["a", "b", "c"])
    settings = load_trained_model(runs[exp], device="cpu")[0]
    assert pred["run_dir"] == str(Path(runs[exp]).resolve())
    assert (pred["experiment"], pred["profile"]) == (exp, "smoke")
    assert pred["threshold"] == settings.eval_threshold
    assert pred["combination"] == COMBINATION_RULE and pred["paired_with_itself"] is False
    assert {frozenset((p["image_a"], p["image_b"])) for p in pred["pairs"]} == {
        frozenset(c) for c in combinations("abc", 2)}
    assert len(pred["pairs"]) == 3
    if exp == "cosegnet":
        assert pred["decision"] == "pair"
        for p in pred["pairs"]:
            assert 0.0 <= p["decision_probability"] <= 1.0
            assert p["common_object"] == (p["decision_probability"] > pred["threshold"])
        for im in pred["images"]:
            accepted = sum(p["common_object"] for p in pred["pairs"] if im["name"] in (p["image_a"], p["image_b"]))
            assert im["accepted_pairings"] == accepted and im["pairings"] == 2
            if accepted == 0:
                assert im["foreground_fraction"] == 0.0
    else:
        assert pred["decision"] is None
        assert all("decision_probability" not in p for p in pred["pairs"])
        assert all("accepted_pairings" not in im for im in pred["images"])


def test_single_image_cosegnet_reports_each_images_own_decision(runs, tmp_path):
    paths = write_images(tmp_path / "imgs")
    out = tmp_path / "out"
    assert predict(runs["cosegnet-single-image"], paths, out) == 0
    pred = check_outputs(out, paths, ["a", "b", "c"])
    assert pred["decision"] == "per-image"
    own: dict[str, list[float]] = {}
    for p in pred["pairs"]:
        assert "decision_probability" not in p
        for side in ("a", "b"):
            prob = p[f"decision_probability_{side}"]
            assert 0.0 <= prob <= 1.0 and p[f"common_object_{side}"] == (prob > pred["threshold"])
            own.setdefault(p[f"image_{side}"], []).append(prob)
    # decided from the image alone: the same probability in each of its pairings
    assert sorted(own) == ["a", "b", "c"]
    assert all(max(v) - min(v) < 1e-5 and len(v) == 2 for v in own.values())


def _evaluated_pair(run, path_a: Path, path_b: Path):
    """What the engine's evaluation (predict_pairs) predicts for the pair (a, b)."""
    from cosegkit.train.engine import load_trained_model
    from cosegkit.train.evaluate import _unpack, predict_pairs
    from cosegkit.train.modeling import eval_transform

    settings, model, dev = load_trained_model(run, device="cpu")
    a, b = decode_image(path_a), decode_image(path_b)
    sample = {"image_a": a, "image_b": b, "mask_a": np.zeros(a.shape[:2], bool),
              "mask_b": np.zeros(b.shape[:2], bool), "label": 1}
    (_, pa, pb, dps, _), = predict_pairs(model, settings.model.family, [sample], eval_transform(settings, model),
                                         dev, [0], threshold=settings.eval_threshold)
    return _unpack(pa), _unpack(pb), dps


@pytest.mark.parametrize("which", ["open-unet", "open-cosegnet"])
def test_two_images_give_what_evaluation_predicts_for_the_pair(open_unet, open_cosegnet, which, tmp_path):
    run = open_cosegnet if which == "open-cosegnet" else open_unet
    paths = write_images(tmp_path / "imgs")[:2]
    out = tmp_path / "out"
    assert predict(run, paths, out) == 0
    pred = check_outputs(out, paths, ["a", "b"])
    exp_a, exp_b, dps = _evaluated_pair(run, *paths)
    got_a = np.asarray(Image.open(out / "a_mask.png")) == 255
    got_b = np.asarray(Image.open(out / "b_mask.png")) == 255
    assert np.array_equal(got_a, exp_a) and np.array_equal(got_b, exp_b)
    assert 0 < got_a.mean() < 1 and 0 < got_b.mean() < 1  # neither empty nor full: a real comparison
    if dps is not None:
        assert pred["pairs"][0]["decision_probability"] == pytest.approx(dps[0])
        assert pred["pairs"][0]["common_object"] is True


@pytest.mark.parametrize("exp", ["unet-dice", "cosegnet"])
def test_one_image_is_paired_with_itself(runs, exp, tmp_path, capsys):
    path = write_images(tmp_path / "imgs")[1]
    out = tmp_path / "out"
    assert predict(runs[exp], [path], out) == 0
    assert "paired with itself" in capsys.readouterr().out
    pred = check_outputs(out, [path], ["b"])
    assert pred["paired_with_itself"] is True
    assert [(p["image_a"], p["image_b"]) for p in pred["pairs"]] == [("b", "b")]
    expected, _, _ = _evaluated_pair(runs[exp], path, path)
    assert np.array_equal(np.asarray(Image.open(out / "b_mask.png")) == 255, expected)
    if exp == "cosegnet":
        assert pred["images"][0]["pairings"] == 1
        assert 0.0 <= pred["pairs"][0]["decision_probability"] <= 1.0


def test_corrupt_or_missing_image_is_an_error_naming_it_and_writes_nothing(runs, tmp_path, capsys):
    paths = write_images(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "broken.jpg"
    bad.write_bytes(paths[0].read_bytes()[:200])  # a truncated JPEG
    out = tmp_path / "out"
    assert predict(runs["unet-dice"], [tmp_path / "imgs"], out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"cosegkit predict: error: {bad}: ") and "corrupt or truncated" in err
    assert not out.exists()

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert predict(runs["unet-dice"], [paths[1], text], out) == 2
    assert f"error: {text}: " in capsys.readouterr().err and not out.exists()

    missing = tmp_path / "nope.jpg"
    assert predict(runs["unet-dice"], [paths[1], missing], out) == 2
    assert f"error: {missing}: no such file" in capsys.readouterr().err and not out.exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    assert predict(runs["unet-dice"], [empty], out) == 2
    assert f"error: {empty}: no image files" in capsys.readouterr().err and not out.exists()


def test_a_run_without_checkpoint_is_an_error(runs, tmp_path, capsys):
    paths = write_images(tmp_path / "imgs")
    out = tmp_path / "out"
    assert predict(tmp_path / "no-run", paths, out) == 2
    assert f"error: {tmp_path / 'no-run'}: no such run directory" in capsys.readouterr().err
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(Path(runs["unet-dice"]) / "config.json", half)
    assert predict(half, paths, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint.pt" in err and str(half) in err
    assert "cosegkit train --experiment unet-dice --profile smoke --seed 0" in err  # what to do about it
    from cosegkit.train.modeling import load_trained_model  # evaluate's path says the same

    with pytest.raises(FileNotFoundError, match="cosegkit train --experiment unet-dice --profile smoke --seed 0"):
        load_trained_model(half)
    (half / "checkpoint.pt").write_bytes(b"garbage")
    assert predict(half, paths, out) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot load the trained model" in err
    assert not out.exists()


def test_a_non_empty_output_folder_needs_overwrite(runs, tmp_path, capsys):
    paths = write_images(tmp_path / "imgs")
    out = tmp_path / "out"
    assert predict(runs["unet-dice"], paths, out) == 0
    (out / "mine.txt").write_text("keep me")
    assert predict(runs["unet-dice"], paths[1:], out) == 2
    assert "not empty" in capsys.readouterr().err and (out / "a_mask.png").is_file()
    assert predict(runs["unet-dice"], paths[1:], out, "--overwrite") == 0
    # the previous prediction's files are gone, the user's own file stays
    assert {p.name for p in out.iterdir()} == {"mine.txt", PREDICTIONS_NAME, "b_mask.png", "b_overlay.png",
                                               "c_mask.png", "c_overlay.png"}
    assert [im["name"] for im in read_predictions(out)["images"]] == ["b", "c"]
    assert predict(runs["unet-dice"], [tmp_path / "imgs"], tmp_path / "imgs", "--overwrite") == 2
    assert "also an input folder" in capsys.readouterr().err


def test_folders_are_sorted_and_repeated_stems_get_distinct_names(runs, tmp_path, capsys):
    folder = tmp_path / "group"
    write_images(folder, [("b.png", (40, 56), "PNG"), ("a.JPG", (64, 48), "JPEG")])
    write_images(tmp_path / "other", [("a.png", (30, 30), "PNG")])
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "sub").mkdir()
    write_images(folder / "sub", [("z.png", (20, 20), "PNG")])
    out = tmp_path / "out"
    inputs = [folder, tmp_path / "other" / "a.png"]
    assert predict(runs["cosegnet"], inputs, out) == 0
    paths = [folder / "a.JPG", folder / "b.png", tmp_path / "other" / "a.png"]
    pred = check_outputs(out, paths, ["a", "b", "a-2"])
    assert [im["path"] for im in pred["images"]] == [str(p) for p in paths]
    assert len(pred["pairs"]) == 3
    # the same file twice (here through its folder) is an error, not a silent self-pairing
    assert predict(runs["cosegnet"], [folder, folder / "b.png"], tmp_path / "out2") == 2
    assert "given more than once" in capsys.readouterr().err and not (tmp_path / "out2").exists()


def test_help_explains_inputs_outputs_and_the_combination_rule(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("folder", "_mask.png", "_overlay.png", "predictions.json", "averaged over its pairings",
                   "accepted pairings only", "paired with itself", "--overwrite", "eval_threshold"):
        assert phrase in text, phrase


# --- the combination rule, with stand-in models whose outputs are known exactly -------------------------------

def _bright(x: torch.Tensor) -> torch.Tensor:
    """(B,) True for the bright test images (normalised mean > 0), False for the dark outlier."""
    return x.mean(dim=(1, 2, 3)) > 0


def _halves(n: int, left: torch.Tensor, right: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size, size) maps: `left` on the left half, `right` on the right half (per row)."""
    m = torch.empty(n, size, size)
    m[:, :, : size // 2] = left.view(-1, 1, 1)
    m[:, :, size // 2:] = right.view(-1, 1, 1)
    return m


class _StandIn(torch.nn.Module):
    input_mean = (0.485, 0.456, 0.406)
    input_std = (0.229, 0.224, 0.225)


class _FakeCoSegNet(_StandIn):
    """Mask probability 0.8 left / 0.1 right for every image; decision 0.9 for two bright images, else 0.1 (as
    CoSegNet's logits: the CoSegNet task applies the sigmoids and the §3.5 gate)."""

    def forward(self, a, b):
        from cosegkit.models.outputs import CoSegNetOutput

        prob = torch.where(_bright(a) & _bright(b), 0.9, 0.1)
        masks = _halves(len(a), torch.full((len(a),), 0.8), torch.full((len(a),), 0.1), a.shape[-1])[:, None]
        logit = lambda p: torch.log(p / (1 - p))  # noqa: E731
        unused = torch.zeros(len(a), 1)  # embeddings and pooled vectors: prediction does not read them
        return CoSegNetOutput(logit(masks), logit(masks), unused, unused, unused, unused, logit(prob))


class _FakeUNet(_StandIn):
    """Foreground probability of an image: 0.9 everywhere next to a bright partner; next to the dark one 0.3 on
    the left half and 0.05 on the right."""

    def forward(self, a, b):
        def logits(partner):
            bright = _bright(partner)
            p = _halves(len(a), torch.where(bright, 0.9, 0.3), torch.where(bright, 0.9, 0.05), a.shape[-1])
            return torch.stack([torch.zeros_like(p), torch.log(p / (1 - p))], dim=1)

        from cosegkit.models.outputs import SiameseUNetOutput

        return SiameseUNetOutput(logits(b), logits(a))


def _group_with_outlier(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = []
    for name, value, (h, w) in (("a", 200, (40, 60)), ("b", 220, (50, 50)), ("outlier", 20, (30, 80))):
        Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(folder / f"{name}.png")
        paths.append(folder / f"{name}.png")
    return paths


def _with_fake(monkeypatch, run, fake, threshold: float | None = None):
    import dataclasses

    import cosegkit.predict as predict_module
    from cosegkit.train.engine import load_trained_model

    settings = load_trained_model(run, device="cpu")[0]
    if threshold is not None:
        settings = dataclasses.replace(settings, eval_threshold=threshold)
    monkeypatch.setattr(predict_module, "_load_model", lambda run_dir, device: (settings, fake, torch.device("cpu")))


def _mask(out: Path, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / f"{name}_mask.png")) == 255


def test_cosegnet_averages_over_the_pairings_its_decision_accepts(runs, monkeypatch, tmp_path):
    _with_fake(monkeypatch, runs["cosegnet"], _FakeCoSegNet().eval())
    paths = _group_with_outlier(tmp_path / "imgs")
    out = tmp_path / "out"
    assert predict(runs["cosegnet"], paths, out) == 0
    pred = read_predictions(out)
    decisions = {(p["image_a"], p["image_b"]): (p["decision_probability"], p["common_object"])
                 for p in pred["pairs"]}
    assert decisions == {("a", "b"): (pytest.approx(0.9), True), ("a", "outlier"): (pytest.approx(0.1), False),
                         ("b", "outlier"): (pytest.approx(0.1), False)}
    assert [im["accepted_pairings"] for im in pred["images"]] == [1, 1, 0]
    for name in ("a", "b"):  # 0.8 on the left from the accepted pairing; the rejected one does not halve it
        m = _mask(out, name)
        w = m.shape[1]
        assert m[:, : int(0.4 * w)].all() and not m[:, int(0.6 * w):].any()
    assert not _mask(out, "outlier").any()


@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_unet_averages_the_probability_over_every_pairing(runs, monkeypatch, tmp_path, threshold):
    _with_fake(monkeypatch, runs["unet-dice"], _FakeUNet().eval(), threshold)
    paths = _group_with_outlier(tmp_path / "imgs")
    out = tmp_path / "out"
    assert predict(runs["unet-dice"], paths, out) == 0
    assert read_predictions(out)["threshold"] == threshold
    for name in ("a", "b"):  # left (0.9 + 0.3) / 2 = 0.6; right (0.9 + 0.05) / 2 = 0.475 (max would be 0.9)
        m = _mask(out, name)
        w = m.shape[1]
        if threshold == 0.5:
            assert m[:, : int(0.4 * w)].all() and not m[:, int(0.6 * w):].any()
        else:  # the run's eval_threshold, not a fixed 0.5
            assert not m.any()
    assert _mask(out, "outlier").all()  # both of its partners are bright: 0.9 everywhere


def test_the_missing_weights_message_names_the_runs_data_and_layout(tmp_path):
    from cosegkit.train.modeling import missing_weights_message

    data = tmp_path / "msrc"
    data.mkdir()
    run = tmp_path / "runs" / "r"
    config = {"experiment": "cosegnet", "profile": "cpu", "seed": 3, "data_root": "../../msrc",
              "settings": {"data": {"dataset": "msrc"}}}
    message = missing_weights_message(run, config)
    assert f"--experiment cosegnet --profile cpu --seed 3 --data-root {data} --dataset msrc --out" in message
    data.rmdir()  # the dataset is not where the run saw it: the command says so instead of naming a dead path
    message = missing_weights_message(run, config)
    assert "--data-root DATASET_FOLDER --dataset msrc" in message and f"trained on {data}, which is not here" in message
    config["settings"]["data"]["dataset"] = "folder"
    assert "--dataset" not in missing_weights_message(run, config)  # the default layout needs no flag
    config["data_root"] = None  # a synthetic run: no data root to name
    assert "--data-root" not in missing_weights_message(run, config)
