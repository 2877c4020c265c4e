"""When to draw tqdm bars: on an interactive terminal or in Jupyter, never into a file or a pipe.

A redirected `cosegkit train > log 2>&1` would otherwise get one carriage-return update per step (about 23 MB
for a `paper` run); there the engine writes one line per epoch and `evaluate` one line per set instead.
"""

from __future__ import annotations

import sys

__all__ = ["show_bars"]


def _in_jupyter() -> bool:
    """Whether this process is an IPython kernel (Jupyter, papermill): tqdm.auto draws widgets there."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def show_bars(requested: bool = True) -> bool:
    """Draw progress bars? Only if `requested` and the bars' stream (stderr) is a terminal, or in Jupyter."""
    if not requested:
        return False
    if _in_jupyter():
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
