"""`python tests/sigkill_train.py STEP train ARGS...`: `python -m cosegkit.train train ARGS...`, except that the
process sends itself SIGKILL just before global training step STEP (the exact-resume tests' fault).

The hook is `train(on_step=...)`, passed here by the test: nothing about the fault reaches the run's settings.
"""

from __future__ import annotations

import functools
import os
import signal
import sys

from cosegkit.train import cli
from cosegkit.train.__main__ import main


def _kill_at(step: int, global_step: int) -> None:
    if global_step == step:
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    cli.train = functools.partial(cli.train, on_step=functools.partial(_kill_at, int(sys.argv[1])))
    sys.exit(main(sys.argv[2:]))
