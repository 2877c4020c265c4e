"""What a notebook's ``parameters`` cell means: paths taken from the repository, a checked profile, the data's name
and the engine overrides that the parameters ask for.

Every notebook's set-up cell calls these, so the same parameters mean the same thing whatever directory papermill
or Jupyter was started from.
"""

from __future__ import annotations

from pathlib import Path

from cosegkit.train.profiles import get_profile
from cosegkit.train.run_cache import data_tag  # one definition, next to the run folders it names

__all__ = [
    "REPO_ROOT",
    "repo_path",
    "resolve_root",
    "check_profile",
    "dataset_name",
    "data_tag",
    "data_label",
    "overrides_from",
]

# The checkout this package is imported from (the notebooks' relative paths are taken from here).
REPO_ROOT = Path(__file__).resolve().parents[1]


def repo_path(path) -> Path:
    """`path` as given if absolute (after ~ expansion), else relative to the repository (REPO_ROOT), so that a
    notebook's parameters mean the same folder whatever directory papermill or Jupyter was started from."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def resolve_root(path: str) -> str | None:
    """A dataset-folder parameter as a path string taken from the repository; None when the parameter is empty."""
    return str(repo_path(path)) if path else None


def check_profile(profile: str) -> str:
    """`profile` if it names a profile; ValueError listing the valid ones otherwise."""
    get_profile(profile)
    return profile


def dataset_name(data_root: str | None) -> str:
    """How a table names the data a notebook trains on."""
    return "PASCAL-VOC co-seg" if data_root else "SyntheticCoseg"


def data_label(data_root: str | None) -> str:
    """How a report names the data: the dataset folder's name, never its absolute path on this machine."""
    return f"dataset folder `{Path(data_root).name}`" if data_root else "SyntheticCoseg (embedded)"


def overrides_from(image_size: int | None = None, epochs: int | None = None, device: str = "auto") -> dict:
    """Engine overrides from a notebook's parameters cell (None keeps the profile's value)."""
    overrides = {}
    if image_size is not None:
        overrides["data.image_size"] = int(image_size)
    if epochs is not None:
        overrides["epochs"] = int(epochs)
    if device and device != "auto":
        overrides["device"] = device
    return overrides


def synthetic_overrides(profile: str, overrides: dict) -> dict:
    """`overrides` for the synthetic pair benchmark: the profile's `synthetic_image_size` unless the notebook's
    own `image_size` parameter (already in `overrides`) says otherwise, and its `synthetic_decision_val_pairs`.
    Its rows never tune encoder levels (``model.tune_encoder_levels=0``, so ``model.tuned_levels_float32=false``),
    whatever the profile's claim rows do: the benchmark asks whether the pair matters, and its six runs must fit the
    reproduction's budget."""
    p = get_profile(profile)
    size = {"data.image_size": p.synthetic_image_size} if p.synthetic_image_size is not None else {}
    return {**size, "data.decision_val_pairs": p.synthetic_decision_val_pairs,
            "model.tune_encoder_levels": 0, "model.tuned_levels_float32": False, **overrides}
