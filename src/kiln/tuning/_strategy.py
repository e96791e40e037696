"""Strategies on Optuna: an in-memory study rebuilt from Kiln's own trial rows.

Kiln keeps every trial in its own tables (never Optuna's RDBStorage, whose Alembic tables
would collide with Kiln's); a driver that starts or resumes builds a study from them with
``add_trial(create_trial(...))``, then goes on with ask/tell. Bayesian is TPE, Random is
Optuna's random sampler, Grid walks the grid in a fixed order (enqueued, so a resumed
driver never repeats a point), Hyperband is TPE with Optuna's Hyperband pruner on the
objective's values per step; early stopping Auto is the median rule.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kiln.tuning._ranges import Range, grid_points

__all__ = ["STRATEGIES", "Study", "TrialRecord"]

STRATEGIES = ("Bayesian", "Random", "Grid", "Hyperband")
# Trials of random exploration before TPE models the objective (a quarter of the budget, 2 to 10).
_MIN_STARTUP, _MAX_STARTUP = 2, 10
# Early stopping Auto: the median rule once this many trials have ended.
MEDIAN_STARTUP_TRIALS = 3


class TrialRecord:
    """What the study needs of one trial row (its own, or a warm-start parent's)."""

    def __init__(self, *, number: int, state: str, sampled: Mapping[str, Any], objective: float | None,
                 intermediate: Sequence[float], early_stopped: bool = False) -> None:
        self.number, self.state, self.sampled = number, state, dict(sampled)
        self.objective, self.intermediate, self.early_stopped = objective, list(intermediate), early_stopped


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        from kiln.core.errors import Unavailable

        raise Unavailable("tuning jobs need Optuna: pip install 'kiln[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class Study:
    """One tuning job's Optuna study, in memory, with Kiln's trial numbers mapped to Optuna's."""

    def __init__(self, *, strategy: str, ranges: Sequence[Range], direction: str, seed: int, max_jobs: int, early_stopping: str,
                 name: str = "kiln") -> None:
        optuna = _optuna()
        self.ranges = list(ranges)
        self.by_name = {r.name: r for r in self.ranges}
        self.strategy = strategy
        self.distributions = {r.name: r.distribution() for r in self.ranges}
        startup = max(_MIN_STARTUP, min(_MAX_STARTUP, max_jobs // 4))
        if strategy == "Random":
            sampler = optuna.samplers.RandomSampler(seed=seed)
        else:  # Bayesian, Hyperband, and Grid's (unused) sampler
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
        if strategy == "Hyperband":
            pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3)
        elif early_stopping == "Auto":
            pruner = optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=0)
        else:
            pruner = optuna.pruners.NopPruner()
        # Named after the tuning job, not Optuna's random default: Hyperband puts a trial in a
        # bracket by a hash of the study's name and the trial's number, so the same job (and
        # seed) brackets its trials the same way every run, and a resumed driver as the first did.
        self.study = optuna.create_study(study_name=name, direction="maximize" if direction == "Maximize" else "minimize", sampler=sampler, pruner=pruner)
        self._optuna_number: dict[int, int] = {}  # Kiln trial number -> Optuna trial number
        self._reported: dict[int, int] = {}  # Kiln trial number -> steps reported
        self._grid = grid_points(self.ranges) if strategy == "Grid" else []

    # -- rebuilding -----------------------------------------------------------------------

    def add_warm_start(self, records: Iterable[TrialRecord], parent_ranges: Sequence[Range]) -> int:
        """Seed the study with a parent's ended trials, mapping what fits these ranges
        (values outside a range, or of a hyperparameter it does not tune, are left out).
        Returns how many were added."""
        optuna = _optuna()
        parent_by_name = {r.name: r for r in parent_ranges}
        added = 0
        for rec in records:
            if rec.state not in ("Completed", "Stopped") or rec.objective is None:
                continue
            params = {}
            for name, sampled in rec.sampled.items():
                mine, theirs = self.by_name.get(name), parent_by_name.get(name)
                if mine is None or theirs is None:
                    continue
                value = mine.to_sampled(theirs.to_value(sampled))
                if value is not None:
                    params[name] = value
            if not params:
                continue
            state = optuna.trial.TrialState.PRUNED if rec.early_stopped else optuna.trial.TrialState.COMPLETE
            self.study.add_trial(optuna.trial.create_trial(
                state=state, value=rec.objective if state == optuna.trial.TrialState.COMPLETE else None, params=params,
                distributions={k: self.distributions[k] for k in params},
                intermediate_values={i: v for i, v in enumerate(rec.intermediate)} if state != optuna.trial.TrialState.COMPLETE else None,
            ))
            added += 1
        return added

    def add_own(self, rec: TrialRecord) -> None:
        """One of this job's trials, as its row says (a resumed driver)."""
        optuna = _optuna()
        states = optuna.trial.TrialState
        if rec.state in ("Pending", "Running"):
            state = states.RUNNING
        elif rec.state == "Completed" and rec.objective is not None:
            state = states.COMPLETE
        elif rec.early_stopped or (rec.state == "Stopped" and rec.intermediate):
            state = states.PRUNED
        else:
            state = states.FAIL
        params = {k: v for k, v in rec.sampled.items() if k in self.distributions}
        self.study.add_trial(optuna.trial.create_trial(
            state=state, value=rec.objective if state == states.COMPLETE else None, params=params,
            distributions={k: self.distributions[k] for k in params},
            intermediate_values={i: v for i, v in enumerate(rec.intermediate)},
        ))
        self._optuna_number[rec.number] = len(self.study.get_trials(deepcopy=False)) - 1
        self._reported[rec.number] = len(rec.intermediate)

    # -- ask / report / tell --------------------------------------------------------------

    def ask(self, number: int) -> dict[str, Any]:
        """What trial ``number`` samples (Grid: the ``number``-th point)."""
        if self._grid:
            self.study.enqueue_trial(self._grid[number], skip_if_exists=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's experimental-feature notices are not the user's concern
            trial = self.study.ask(self.distributions)
        self._optuna_number[number] = trial.number
        self._reported[number] = 0
        return dict(trial.params)

    def hyperparameters(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self.by_name[name].to_value(value) for name, value in sampled.items() if name in self.by_name}

    def report(self, number: int, values: Sequence[float]) -> bool:
        """Report the objective's values per step seen so far; True when the pruner (Hyperband,
        or early stopping Auto) says the trial should stop."""
        optuna = _optuna()
        onum = self._optuna_number.get(number)
        if onum is None:
            return False
        frozen = self.study.get_trials(deepcopy=False)[onum]
        if frozen.state != optuna.trial.TrialState.RUNNING:
            return False
        done = self._reported.get(number, 0)
        if len(values) <= done:
            return False
        trial = optuna.Trial(self.study, frozen._trial_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for step in range(done, len(values)):
                trial.report(float(values[step]), step)
            self._reported[number] = len(values)
            return bool(trial.should_prune())

    def tell(self, number: int, *, state: str, objective: float | None, early_stopped: bool) -> None:
        optuna = _optuna()
        onum = self._optuna_number.get(number)
        if onum is None or self.study.get_trials(deepcopy=False)[onum].state != optuna.trial.TrialState.RUNNING:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if state == "Completed" and objective is not None and not early_stopped:
                self.study.tell(onum, objective)
            elif (early_stopped or state == "Stopped") and self._reported.get(number):
                self.study.tell(onum, state=optuna.trial.TrialState.PRUNED)
            else:
                self.study.tell(onum, state=optuna.trial.TrialState.FAIL)
