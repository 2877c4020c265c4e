"""Training and evaluation engine for both model families (SiameseUNet + pixel DML losses; CoSegNet).

Public API::

    from cosegkit.train import train, evaluate_run, list_experiments, get_profile
    result = train("unet-dice-istriplet", "smoke", out="runs/demo", data_root=None, seed=0)
    result.test["positive"]["jaccard"]; result.history  # per-epoch rows, as in runs/demo/metrics.csv
    evaluate_run("runs/demo", data_root="path/to/folder")

Settings are frozen dataclasses (`TrainSettings` and its sections); a profile (`smoke`, `cpu`, `paper`) fills
the numbers and an experiment (one per table row, `list_experiments()`) picks the model and losses.
"""

from cosegkit.train.engine import RunResult, load_trained_model, train, train_splits
from cosegkit.train.evaluate import evaluate_run, score_pairs
from cosegkit.train.experiments import Experiment, build_settings, get_experiment, list_experiments
from cosegkit.train.profiles import Profile, get_profile, list_profiles
from cosegkit.train.settings import (
    DataSettings,
    LossSettings,
    ModelSettings,
    OptimSettings,
    TrainSettings,
    apply_overrides,
)

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
