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

QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "optuna", "hydra_plugins.hydra_optuna_sweeper")


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
