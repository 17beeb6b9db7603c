"""Moved: the experiment runners live in :mod:`mini_cal.lab` (``lab.experiments``, ``lab.runs``, ``lab.stats``,
``lab.tables``) and the tuned configurations in each method's declaration (``mini_cal.methods``). This module keeps
the names earlier notebooks and scripts import working."""

from .evaluate import attack_curves as _attack_curves
from .lab.experiments import (  # noqa: F401
    SWEEP_BUDGET,
    SWEEP_COMMAND,
    SWEEP_SEEDS,
    check_saved_models,
    compare,
    model_filename,
    robustness,
    sample_configs,
    sweep,
    validate_methods,
)
from .lab.runs import BASE_TRAIN, run_one, run_tasks  # noqa: F401
from .lab.stats import significance  # noqa: F401
from .lab.tables import config_table, results_table, robustness_auc_summary, robustness_tables, significance_table  # noqa: F401
from .methods import default_methods, split_config, tuned_config  # noqa: F401
from .train import epoch_means  # noqa: F401

DEFAULT_METHODS = tuple(default_methods(2))


def attack_curves(model, params, ds, predict, seed: int = 0, **kwargs) -> dict:
    """Test accuracy under every attack x target x level of dataset ``ds``'s test split
    (:func:`mini_cal.evaluate.attack_curves`)."""
    return _attack_curves(model, params, ds.x_test, ds.y_test, predict, seed=seed, **kwargs)
