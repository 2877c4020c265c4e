"""One task per model family, and the registry that maps a family's name to it.

- ``"unet"``: :class:`~cosegkit.tasks.siamese_unet.SiameseUNetTask` (is_triplet_coseg §3.3, Eq. 5);
- ``"cosegnet"``: :class:`~cosegkit.tasks.cosegnet.CoSegNetTask` (cosegnet §3, Eq. 1-4, the §3.5 decision gate);
- ``"cosegnet-base"``: :class:`~cosegkit.tasks.cosegnet_base.CoSegNetBaseTask` (cosegnet §4.5, Table 5).

``task_for(settings)`` (or a family name) is the only place that looks at ``model.family``; everything else asks
the task (see :class:`~cosegkit.tasks.base.Task`). Inference helpers for the notebooks: :mod:`cosegkit.tasks.
inference`.
"""

from __future__ import annotations

from cosegkit.tasks.base import PairPrediction, Task
from cosegkit.tasks.cosegnet import CoSegNetTask
from cosegkit.tasks.cosegnet_base import CoSegNetBaseTask
from cosegkit.tasks.siamese_unet import SiameseUNetTask
from cosegkit.train.data import RunData

__all__ = ["TASKS", "Task", "PairPrediction", "task_for", "build_run_data"]

TASKS: dict[str, Task] = {task.family: task for task in (SiameseUNetTask(), CoSegNetTask(), CoSegNetBaseTask())}


def task_for(family_or_settings) -> Task:
    """The task of a family name, of a ModelSettings / Experiment (``.family``) or of a TrainSettings
    (``.model.family``)."""
    family = family_or_settings
    if hasattr(family, "model"):
        family = family.model
    family = getattr(family, "family", family)
    try:
        return TASKS[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; valid families: {', '.join(TASKS)}") from None


def build_run_data(settings, data_root=None) -> RunData:
    """What the run of ``settings`` trains and is scored on (data root None: the synthetic set)."""
    return task_for(settings).build_data(settings, data_root)
