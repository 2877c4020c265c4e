"""Training and evaluation engine for both model families (SiameseUNet + pixel DML losses; CoSegNet).

Public API::

    from cosegkit.train import train, evaluate_run, list_experiments, get_profile
    result = train("unet-dice-istriplet", "smoke", out="runs/demo", data_root=None, seed=0)
    result.test["positive"]["jaccard"]; result.history  # per-epoch rows, as in runs/demo/metrics.csv
    evaluate_run("runs/demo", data_root="path/to/folder")

Settings are frozen dataclasses (`TrainSettings` and its sections); a profile (`list_profiles()`) fills the
numbers and an experiment (one per table row, `list_experiments()`) picks the model and losses.

Layout: engine.py (`train`, `train_splits`: settings and resume checks) runs a `Trainer` (trainer.py: resume,
train_epoch, validate, checkpoint, test, finalise); what differs between model families is its task
(cosegkit.tasks); evaluate.py scores pairs; records.py writes a run's files; run_cache.py keys runs by their
settings for the notebooks.
"""

import importlib

# Where each public name lives. Imported on first use (PEP 562), so that a submodule such as
# cosegkit.train.settings can be imported (by cosegkit.tasks, say) without importing the whole engine first.
_EXPORTS = {
    "train": "engine", "train_splits": "engine", "load_trained_model": "engine", "RunResult": "engine",
    "evaluate_run": "evaluate", "score_pairs": "evaluate",
    "Experiment": "experiments", "build_settings": "experiments", "get_experiment": "experiments",
    "list_experiments": "experiments",
    "Profile": "profiles", "get_profile": "profiles", "list_profiles": "profiles",
    "DataSettings": "settings", "LossSettings": "settings", "ModelSettings": "settings", "OptimSettings": "settings",
    "TrainSettings": "settings", "apply_overrides": "settings",
}

__all__ = [
    "train",
    "train_splits",
    "evaluate_run",
    "score_pairs",
    "load_trained_model",
    "RunResult",
    "list_experiments",
    "get_experiment",
    "build_settings",
    "get_profile",
    "list_profiles",
    "Profile",
    "Experiment",
    "TrainSettings",
    "ModelSettings",
    "LossSettings",
    "OptimSettings",
    "DataSettings",
    "apply_overrides",
]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
