"""What a run prints: a one-screen summary by default, everything with ``extras.verbose=true``.

Default console: what runs and where it writes, progress bars (encoding, training, testing),
the results table. Hidden unless verbose: Lightning's info lines and tips ("GPU available",
"💡 Tip: ..."), Arrow dataset-saving bars, weight-loading bars, Optuna's per-trial info and
W&B's run summary. The full composed config is always in ``<run>/.hydra/config.yaml``;
``extras.print_config=true`` (or verbose) prints it too. Log files keep INFO either way.
"""
from __future__ import annotations

import logging
import os
import sys

QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "optuna")


def configure(verbose: bool = False) -> None:
    """Set the console's verbosity for this process (idempotent)."""
    level = logging.INFO if verbose else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if verbose:
        return
    # W&B: no run-history/summary footer (the results table is the summary).
    os.environ.setdefault("WANDB_QUIET", "true")
    try:
        import datasets

        datasets.disable_progress_bars()  # "Saving the dataset (1/1 shards)": an internal cache write
    except ImportError:  # pragma: no cover
        pass
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights": instant for our encoders
    except ImportError:  # pragma: no cover
        pass
    if "optuna" in sys.modules:  # a sweep (the sweeper imported it): no per-trial info lines
        sys.modules["optuna"].logging.set_verbosity(sys.modules["optuna"].logging.WARNING)


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object


class QuietOptuna(Callback):
    """Hydra callback (conf/hparams_search/optuna.yaml): before the sweeper imports Optuna and
    creates its study, set Optuna's logger to WARNING (its import resets it to INFO, so a
    logging config alone can't) and silence the alembic plugin-setup lines it pulls in. The
    sweeper's own summary (study, sampler, best parameters and value) stays."""

    def __init__(self, verbose: bool = False):
        self.verbose = verbose

    def on_multirun_start(self, config, **kwargs) -> None:
        if self.verbose:
            return
        logging.getLogger("alembic").setLevel(logging.WARNING)
        try:
            import optuna
        except ImportError:  # pragma: no cover
            return
        optuna.logging.set_verbosity(optuna.logging.WARNING)

