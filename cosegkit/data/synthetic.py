"""`SyntheticCoseg`: procedurally generated co-segmentation pairs, no download.

Each image shows 2-3 objects of distinct *categories* on a background cut from a photograph. A category is a
shape family x a texture family (default 4 x 3 = 12 categories); textures and backgrounds are crops of real
photographs bundled with scikit-image (``skimage.data``: brick, grass, gravel, chelsea, astronaut, rocket,
coffee, camera, moon, hubble_deep_field) and scikit-learn (``load_sample_images``: china, flower). Texture families
never serve as backgrounds. Every object gets a random pose (position, rotation, aspect), scale, texture crop and
stride, lighting gain and shading gradient; later objects occlude earlier ones; a global light gradient and
colour cast are applied to the image.

* Positive pair (label 1): the two images share exactly one category; ``mask_a``/``mask_b`` cover only the
  visible (not occluded) pixels of that category's object.
* Negative pair (label 0): the images share no category; both masks are empty.
* Saliency is not enough: in each image of a positive pair the common object covers at most
  ``MAX_COMMON_SHARE`` = 0.6 of the union of all objects, so predicting every object scores Jaccard <= 0.6.
  Layouts violating this (or hiding more than half of any object) are redrawn from the same generator.
* Pair ``i`` is generated from ``numpy.random.default_rng([seed, i])`` alone, so random access is deterministic
  and independent of ``n_pairs``; whether it is negative is the first draw (``< negative_fraction``).

Extra keys besides the `PairSample` ones: ``objects_a``/``objects_b`` (union of all objects' visible pixels),
``category`` (common category name, or None for a negative pair), ``categories_a``/``categories_b`` (the
categories present, in painting order). ``group_a``/``group_b`` are the common category for a positive pair and,
for a negative pair, the category of each image's first-drawn object.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["SyntheticCoseg", "SHAPES", "TEXTURES", "BACKGROUNDS", "DEFAULT_TEXTURES", "MAX_COMMON_SHARE"]

SHAPES = ("disc", "square", "triangle", "star")
# name -> (loader key, crop (rows, cols) or None, RGB tint for greyscale sources or None)
_TEXTURE_SPECS = {
    "brick": ("brick", None, (0.95, 0.50, 0.38)),
    "grass": ("grass", None, (0.45, 0.90, 0.35)),
    "gravel": ("gravel", None, (0.50, 0.62, 1.00)),
    "fur": ("chelsea", (slice(0, 75), slice(150, 330)), None),
    "petals": ("flower", (slice(150, 300), slice(230, 380)), None),
}
TEXTURES = tuple(_TEXTURE_SPECS)
DEFAULT_TEXTURES = ("brick", "grass", "fur")
BACKGROUNDS = ("astronaut", "rocket", "coffee", "camera", "moon", "hubble_deep_field", "china")
MAX_COMMON_SHARE = 0.6
_MIN_VISIBLE = 0.5  # every object keeps at least this fraction of its own area visible
_SOURCE_SIDE = 256  # photographs are resized once so that their short side is this many pixels


def _photo(key: str) -> np.ndarray:
    if key in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{key}.jpg")
    import skimage.data

    return getattr(skimage.data, key)()


@functools.cache
def _source(kind: str, name: str) -> np.ndarray:
    """A float32 planar photograph with values in [0, 255], loaded and resized once per process: (3, H, W) for
    textures, (4, H, W) (RGB + grey) for backgrounds."""
    from PIL import Image

    if kind == "texture":
        key, crop, tint = _TEXTURE_SPECS[name]
    else:
        key, crop, tint = name, None, None
    arr = np.asarray(_photo(key))
    if crop is not None:
        arr = arr[crop]
    im = Image.fromarray(np.ascontiguousarray(arr))
    scale = _SOURCE_SIDE / min(im.size) if crop is None else 1.0
    if scale < 1.0:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)
    out = np.asarray(im, dtype=np.float32)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    if tint is not None:
        out = 30.0 + 0.88 * out * np.asarray(tint, dtype=np.float32)
    out = out[..., :3].transpose(2, 0, 1)
    if kind == "background":  # a fourth, grey plane for cheap desaturation
        out = np.concatenate([out, out.mean(axis=0, keepdims=True)])
    # Planar (C, H, W): numpy broadcasts over a trailing axis of length 3 slowly.
    return np.ascontiguousarray(out)


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """Fold indices into [0, n) by reflection: 0..n-1, n-1..0, 0..n-1, ..."""
    idx = idx % (2 * n)
    return np.where(idx < n, idx, 2 * n - 1 - idx)


def _crop(src: np.ndarray, rng: np.random.Generator, h: int, w: int, stride: int) -> np.ndarray:
    """A (C, h, w) crop of planar ``src`` at a random offset, subsampled by ``stride``, randomly flipped; a
    strided view when it fits, otherwise tiling the photograph with mirrored copies (no seams; a copy)."""
    sh, sw = src.shape[1:]
    flip_r, flip_c = rng.random(2) < 0.5
    if (h - 1) * stride < sh and (w - 1) * stride < sw:
        r0 = int(rng.integers(sh - (h - 1) * stride))
        c0 = int(rng.integers(sw - (w - 1) * stride))
        out = src[:, r0:r0 + (h - 1) * stride + 1:stride, c0:c0 + (w - 1) * stride + 1:stride]
    else:
        rows = _mirror(int(rng.integers(sh)) + np.arange(h) * stride, sh)
        cols = _mirror(int(rng.integers(sw)) + np.arange(w) * stride, sw)
        out = src[:, rows[:, None], cols[None, :]]
    return out[:, ::-1 if flip_r else 1, ::-1 if flip_c else 1]


def _convex_edges(verts: np.ndarray) -> list[tuple[float, float, float]]:
    """Half-planes a*u + b*v <= c whose intersection is the convex polygon ``verts`` (counter-clockwise)."""
    edges = []
    for (x0, y0), (x1, y1) in zip(verts, np.roll(verts, -1, axis=0), strict=True):
        a, b = y1 - y0, x0 - x1  # outward normal of a counter-clockwise edge
        edges.append((float(a), float(b), float(a * x0 + b * y0)))
    return edges


def _star_kites(outer: float = 1.4, inner: float = 0.65) -> list[list[tuple[float, float, float]]]:
    kites = []
    for k in range(5):
        t = np.pi / 2 + 2 * np.pi * k / 5
        verts = np.array([[0.0, 0.0],
                          [inner * np.cos(t - np.pi / 5), inner * np.sin(t - np.pi / 5)],
                          [outer * np.cos(t), outer * np.sin(t)],
                          [inner * np.cos(t + np.pi / 5), inner * np.sin(t + np.pi / 5)]])
        kites.append(_convex_edges(verts))
    return kites


_STAR_EXTENT = 1.5  # the template covers [-1.5, 1.5]^2 in the unit frame; its border is outside the star


@functools.lru_cache(maxsize=1)
def _star_template(n: int = 513) -> np.ndarray:
    """Regular five-pointed star (outer radius 1.4, inner 0.65) as the union of five convex kites."""
    g = np.linspace(-_STAR_EXTENT, _STAR_EXTENT, n)
    u, v = g[None, :], g[:, None]
    out = np.zeros((n, n), dtype=bool)
    for edges in _star_kites():
        inside = np.ones((n, n), dtype=bool)
        for a, b, c in edges:
            inside &= a * u + b * v <= c + 1e-12
        out |= inside
    return out


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in the object's unit frame (all shapes have roughly the area of the unit disc)."""
    if shape == "disc":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.85
    if shape == "triangle":  # equilateral, circumradius 1.35: three half-planes at distance 1.35 / 2
        d = 0.675
        return (v <= d) & (0.866 * u - 0.5 * v <= d) & (-0.866 * u - 0.5 * v <= d)
    if shape == "star":  # concave: look up a pre-rasterised template (half-plane tests would be 20 passes)
        t = _star_template()
        n = t.shape[0]
        scale = (n - 1) / (2 * _STAR_EXTENT)
        iu = np.clip((u + _STAR_EXTENT) * scale + 0.5, 0, n - 1).astype(np.intp)
        iv = np.clip((v + _STAR_EXTENT) * scale + 0.5, 0, n - 1).astype(np.intp)
        return t[iv, iu]
    raise ValueError(f"unknown shape {shape!r}; valid: {SHAPES}")


class SyntheticCoseg(Sequence):
    """``n_pairs`` procedurally generated co-segmentation pairs of ``size`` (int or (H, W)) images.

    ``negative_fraction`` of the pairs (in expectation) are negative. ``shapes``/``textures`` choose the shape
    and texture families (categories = their product; at least 6 are needed so that two 3-object images can
    share nothing). See the module docstring for the guarantees.
    """

    def __init__(self, n_pairs: int, size: int | Sequence[int] = 128, seed: int = 0,
                 negative_fraction: float = 0.0, shapes: Sequence[str] = SHAPES,
                 textures: Sequence[str] = DEFAULT_TEXTURES, backgrounds: Sequence[str] = BACKGROUNDS):
        if not isinstance(n_pairs, int | np.integer) or n_pairs < 0:
            raise ValueError(f"n_pairs must be a non-negative int, got {n_pairs!r}")
        if not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if not 0.0 <= negative_fraction <= 1.0:
            raise ValueError(f"negative_fraction must be in [0, 1], got {negative_fraction}")
        hw = (size, size) if isinstance(size, int | np.integer) else tuple(size)
        if len(hw) != 2 or min(hw) < 32:
            raise ValueError(f"size must be an int or (H, W) with sides >= 32, got {size!r}")
        for s in shapes:
            if s not in SHAPES:
                raise ValueError(f"unknown shape {s!r}; valid: {SHAPES}")
        for t in textures:
            if t not in _TEXTURE_SPECS:
                raise ValueError(f"unknown texture {t!r}; valid: {TEXTURES}")
        for b in backgrounds:
            if b not in BACKGROUNDS:
                raise ValueError(f"unknown background {b!r}; valid: {BACKGROUNDS}")
        self.categories = [f"{s}-{t}" for s in shapes for t in textures]
        if len(self.categories) < 6 or len(set(self.categories)) != len(self.categories):
            raise ValueError(f"need at least 6 distinct categories, got {self.categories}")
        self.n_pairs = int(n_pairs)
        self.size = (int(hw[0]), int(hw[1]))
        self.seed = int(seed)
        self.negative_fraction = float(negative_fraction)
        self.shapes, self.textures, self.backgrounds = tuple(shapes), tuple(textures), tuple(backgrounds)
        self._loaded = False
        h, w = self.size
        self._yy = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
        self._xx = (np.arange(w, dtype=np.float32) + 0.5)[None, :]

    def __len__(self) -> int:
        return self.n_pairs

    def __getitem__(self, i: int) -> dict:
        if not isinstance(i, int | np.integer):
            raise TypeError(f"index must be an int, got {type(i).__name__}")
        if i < 0:
            i += self.n_pairs
        if not 0 <= i < self.n_pairs:
            raise IndexError(f"pair index out of range for {self.n_pairs} pairs")
        return self.generate(int(i))

    def generate(self, i: int) -> dict:
        """Pair ``i`` (any non-negative int; the dataset length does not matter)."""
        if not self._loaded:  # load every photograph this dataset uses once, before the first pair
            for b in self.backgrounds:
                _source("background", b)
            for t in self.textures:
                _source("texture", t)
            self._loaded = True
        rng = np.random.default_rng([self.seed, int(i)])
        negative = bool(rng.random() < self.negative_fraction)
        n_a, n_b = (int(v) for v in rng.integers(2, 4, size=2))
        perm = [int(c) for c in rng.permutation(len(self.categories))]
        if negative:
            cats_a, cats_b, common = perm[:n_a], perm[n_a:n_a + n_b], None
        else:
            common = perm[0]
            cats_a, cats_b = perm[1:n_a], perm[n_a:n_a + n_b - 1]
            # The common object's place in the painting (occlusion) order is random.
            cats_a.insert(int(rng.integers(n_a)), common)
            cats_b.insert(int(rng.integers(n_b)), common)
        image_a, labels_a = self._render(rng, cats_a, common)
        image_b, labels_b = self._render(rng, cats_b, common)
        obj_a, obj_b = labels_a >= 0, labels_b >= 0
        if negative:
            mask_a, mask_b = np.zeros_like(obj_a), np.zeros_like(obj_b)
            group_a, group_b = self.categories[cats_a[0]], self.categories[cats_b[0]]
        else:
            mask_a, mask_b = labels_a == common, labels_b == common
            group_a = group_b = self.categories[common]
        return {
            "image_a": image_a, "image_b": image_b, "mask_a": mask_a, "mask_b": mask_b,
            "label": 0 if negative else 1, "group_a": group_a, "group_b": group_b,
            "objects_a": obj_a, "objects_b": obj_b,
            "category": None if common is None else self.categories[common],
            "categories_a": [self.categories[c] for c in cats_a],
            "categories_b": [self.categories[c] for c in cats_b],
        }

    def _layout(self, rng: np.random.Generator, cats: list[int]):
        """Random poses; returns per-object (bbox, inside-mask, unit-frame u) and the label map."""
        h, w = self.size
        side = min(h, w)
        objs = []
        labels = np.full((h, w), -1, dtype=np.int16)
        for c in cats:
            shape = self.shapes[c // len(self.textures)]
            p = rng.random(6)  # one draw per object: radius, aspect, rotation, centre (y, x)
            r = side * (0.13 + 0.11 * p[0])
            aspect = 0.75 + 0.58 * p[1]
            theta = 2 * np.pi * p[2]
            cy, cx = (0.18 + 0.64 * p[3]) * h, (0.18 + 0.64 * p[4]) * w
            ext = 1.45 * r * max(aspect, 1 / aspect)
            y0, y1 = max(0, int(cy - ext)), min(h, int(np.ceil(cy + ext)))
            x0, x1 = max(0, int(cx - ext)), min(w, int(np.ceil(cx + ext)))
            dy, dx = self._yy[y0:y1] - cy, self._xx[:, x0:x1] - cx
            # Rotate and scale into the unit frame: products of 1-D vectors first, one broadcast add each.
            cu, su = np.cos(theta) / (r * aspect), np.sin(theta) / (r * aspect)
            cv, sv = np.cos(theta) * aspect / r, np.sin(theta) * aspect / r
            u = dx * cu + dy * su
            v = dy * cv - dx * sv
            inside = _shape_mask(shape, u, v)
            objs.append(((y0, y1, x0, x1), inside, u))
            np.copyto(labels[y0:y1, x0:x1], c, where=inside)
        return objs, labels

    def _render(self, rng: np.random.Generator, cats: list[int], common: int | None):
        h, w = self.size
        for _attempt in range(200):
            objs, labels = self._layout(rng, cats)
            vis = np.bincount((labels + 1).ravel(), minlength=max(cats) + 2)[1:]
            full = [int(inside.sum()) for _, inside, _ in objs]
            if any(f == 0 or vis[c] < _MIN_VISIBLE * f for c, f in zip(cats, full, strict=True)):
                continue
            if common is not None and vis[common] > MAX_COMMON_SHARE * vis[cats].sum():
                continue
            break
        else:  # pragma: no cover - the acceptance rate is far above 1/200
            raise RuntimeError("could not draw a valid layout in 200 attempts")
        bg = _source("background", self.backgrounds[int(rng.integers(len(self.backgrounds)))])
        crop = _crop(bg, rng, h, w, int(rng.integers(1, 3)))  # (4, h, w): RGB and grey
        desat = np.float32(rng.uniform(0.0, 0.6))  # partial desaturation of the background
        image = crop[:3] * (1 - desat)
        image += crop[3] * desat
        for c, ((y0, y1, x0, x1), inside, u) in zip(cats, objs, strict=True):
            tex = _source("texture", self.textures[c % len(self.textures)])
            patch = _crop(tex, rng, y1 - y0, x1 - x0, int(rng.integers(1, 3)))
            gain, slope = rng.uniform(0.75, 1.2), rng.uniform(-0.2, 0.2)
            shade = np.clip(u, -1.0, 1.0)  # lighting gradient across the object
            shade *= gain * slope
            shade += gain
            np.copyto(image[:, y0:y1, x0:x1], patch * shade, where=inside)
        psi = rng.uniform(0, 2 * np.pi)
        ramp = (self._xx / w - 0.5) * np.cos(psi) + (self._yy / h - 0.5) * np.sin(psi)
        image *= rng.uniform(0.85, 1.1) + rng.uniform(0.0, 0.5) * ramp  # global light gradient
        image *= rng.uniform(0.9, 1.1, size=(3, 1, 1)).astype(np.float32)  # colour cast
        np.clip(image, 0.0, 255.0, out=image)
        image = np.stack((image[0], image[1], image[2]), axis=-1).astype(np.uint8)
        return image.astype(np.uint8), labels
