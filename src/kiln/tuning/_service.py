"""Tuning jobs (SageMaker Automatic Model Tuning): the request is checked here, before
anything runs, so a bad one is refused with a 4xx and leaves no job. A tuning job is a job
of kind ``tuning``; its driver (:mod:`kiln.tuning._driver`) runs in a job runner and starts
its trials as training jobs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from kiln.core.context import Context
from kiln.core.errors import Conflict, InvalidArgument, NotFound
from kiln.core.names import check_name
from kiln.core.workspace import Workspace
from kiln.jobs import _tables as jt
from kiln.jobs._service import JobService
from kiln.training._spec import training_options
from kiln.tuning import _tables as t
from kiln.tuning._models import ObjectivePoint, Trial, TuningJob
from kiln.tuning._ranges import grid_size, parse_ranges, ranges_json
from kiln.tuning._strategy import STRATEGIES

__all__ = ["TuningService"]

OBJECTIVE_TYPES = ("Maximize", "Minimize")
EARLY_STOPPING = ("Off", "Auto")
WARM_START_TYPES = ("IdenticalDataAndAlgorithm", "TransferLearning")
MAX_JOBS = 500
MAX_PARALLEL = 100
MAX_PARENTS = 5  # SageMaker's limit on warm-start parents
# A trial is named <tuning-job>-<nnn>-<8 hex>: the tuning job's name leaves room for 13 characters.
MAX_NAME = 50


def _stamp() -> str:
    now = time.time()
    return time.strftime("%y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"


class TuningService:
    """Tuning jobs: many training jobs over hyperparameter ranges, toward one objective."""

    def __init__(self, ws: Workspace, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx

    @training_options()
    def create(
        self,
        *,
        objective_metric_name: str,
        hyperparameter_ranges: Mapping[str, Any],
        name: str | None = None,
        base_tuning_job_name: str | None = None,
        objective_type: str = "Maximize",
        strategy: str = "Bayesian",
        max_jobs: int | None = None,
        max_parallel_jobs: int = 1,
        early_stopping_type: str = "Off",
        warm_start_parents: Sequence[str] | None = None,
        warm_start_type: str | None = None,
        random_seed: int | None = None,
        **training: Any,
    ) -> TuningJob:
        """Start a tuning job: up to ``max_jobs`` training jobs (``max_parallel_jobs`` at a
        time) over ``hyperparameter_ranges`` (SageMaker's ParameterRanges), toward
        ``objective_metric_name`` (a metric definition's Name) by ``objective_type``.

        The training job is defined as for ``training.create``, by the same options
        (:class:`~kiln.training._spec.TrainingOptions`: a script or a built-in algorithm);
        ``hyperparameters`` are the static ones every trial gets, ``max_run_s`` and
        ``max_retries`` apply to each trial, ``experiment`` is the tuning job's run's.

        Raises:
            InvalidArgument: bad ranges, strategy, objective (a metric no definition captures),
                limits or warm start; anything ``training.create`` refuses.
            NotFound: a channel's source or a warm-start parent does not exist.
        """
        from kiln.training._service import TrainingService

        self.ctx.require("editor")
        jobs = JobService(self.ws, self.ctx)
        jobs.executor.warm()
        if strategy not in STRATEGIES:
            raise InvalidArgument(f"unknown strategy {str(strategy)[:40]!r}; one of {', '.join(STRATEGIES)}")
        if objective_type not in OBJECTIVE_TYPES:
            raise InvalidArgument(f"objective type {str(objective_type)[:40]!r} is not Maximize or Minimize")
        if early_stopping_type not in EARLY_STOPPING:
            raise InvalidArgument(f"early stopping type {str(early_stopping_type)[:40]!r} is not Off or Auto")
        if strategy == "Hyperband" and early_stopping_type != "Off":
            raise InvalidArgument("the Hyperband strategy stops trials itself; leave early stopping Off")
        ranges = parse_ranges(hyperparameter_ranges)
        if strategy == "Grid":
            size = grid_size(ranges)
            if max_jobs is not None and int(max_jobs) > size:
                raise InvalidArgument(f"the grid has {size} point(s); give max_jobs of at most {size}, or leave it out")
            max_jobs = size if max_jobs is None else max_jobs
        if max_jobs is None:
            max_jobs = 1  # SageMaker's default
        if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or not 1 <= max_jobs <= MAX_JOBS:
            raise InvalidArgument(f"max_jobs must be between 1 and {MAX_JOBS}")
        if isinstance(max_parallel_jobs, bool) or not isinstance(max_parallel_jobs, int) or not 1 <= max_parallel_jobs <= MAX_PARALLEL:
            raise InvalidArgument(f"max_parallel_jobs must be between 1 and {MAX_PARALLEL}")
        if random_seed is not None and (isinstance(random_seed, bool) or not isinstance(random_seed, int) or not 0 <= random_seed < 2**31):
            raise InvalidArgument("random_seed must be an integer between 0 and 2**31 - 1")
        if not isinstance(objective_metric_name, str) or not 1 <= len(objective_metric_name) <= 255:
            raise InvalidArgument('objective_metric_name is the Name of a metric definition, e.g. "validation:auc"')
        hyperparameters = training["hyperparameters"]
        static = dict(hyperparameters or {}) if isinstance(hyperparameters, Mapping) else hyperparameters
        if isinstance(static, Mapping):
            tuned = sorted(r.name for r in ranges if r.name in static)
            if tuned:
                raise InvalidArgument(f"{tuned} are both static hyperparameters and tuned ranges; give each one once")
        for label, value in (("name", name), ("base tuning job name", base_tuning_job_name)):
            if value is not None:
                check_name(value, kind=label)
                if len(value) > MAX_NAME:
                    raise InvalidArgument(f"a tuning job's {label} has at most {MAX_NAME} characters (its trials add -NNN-xxxxxxxx)")
        algorithm = training["algorithm"]
        base = base_tuning_job_name or (algorithm or "tuning")
        job_name = name or f"{base[: MAX_NAME - 18].rstrip('-_')}-{_stamp()}"
        max_run_s, max_retries = training["max_run_s"], training["max_retries"]
        trial, _ = TrainingService(self.ws, self.ctx).check_spec(**{
            **training, "hyperparameters": static, "model_name": training["model_name"] or job_name,
            "experiment": training["experiment"] or "tuning-jobs", "base_job_name": None,
        })
        names = [d["Name"] for d in trial["metric_definitions"]]
        if objective_metric_name not in names:
            shown = ", ".join(names[:20]) or "none"
            raise InvalidArgument(
                f"objective metric {objective_metric_name!r} is not captured by the metric definitions ({shown}); "
                'add {"Name": ..., "Regex": ...} for it to metric_definitions'
            )
        if algorithm:
            _check_builtin_ranges(algorithm, ranges)
        parents = self._check_warm_start(warm_start_parents, warm_start_type, trial)
        spec = {
            "objective_metric_name": objective_metric_name, "objective_type": objective_type, "strategy": strategy,
            "hyperparameter_ranges": ranges_json(ranges), "max_jobs": max_jobs, "max_parallel_jobs": max_parallel_jobs,
            "early_stopping_type": early_stopping_type, "warm_start_parents": parents,
            "warm_start_type": warm_start_type if parents else None, "random_seed": int(random_seed or 0),
            "max_run_s": max_run_s, "max_retries": int(max_retries), "training": trial,
            "experiment": trial["experiment"], "hyperparameters": trial["hyperparameters"],
        }
        if max_run_s is not None and not (0 < float(max_run_s) <= 28 * 86_400):
            raise InvalidArgument("max_run_s (each trial's time limit) must be between 1 second and 28 days")
        if not isinstance(max_retries, int) or not 0 <= max_retries <= 29:
            raise InvalidArgument("max_retries must be between 0 and 29")
        jobs.submit(kind="tuning", spec=spec, name=job_name, cpus=0.0)
        return self.get(name=job_name)

    def _check_warm_start(self, parents: Sequence[str] | None, kind: str | None, training: Mapping[str, Any]) -> list[str]:
        if not parents:
            if kind is not None:
                raise InvalidArgument("a warm start type needs warm_start_parents: the tuning jobs to start from")
            return []
        if isinstance(parents, str) or not isinstance(parents, Sequence):
            raise InvalidArgument("warm_start_parents is a list of tuning job names")
        if kind not in WARM_START_TYPES:
            raise InvalidArgument(f"warm start type {str(kind)[:40]!r} is not one of {', '.join(WARM_START_TYPES)}")
        if not 1 <= len(parents) <= MAX_PARENTS or len(set(parents)) != len(parents):
            raise InvalidArgument(f"give 1 to {MAX_PARENTS} distinct warm-start parents")
        for parent in parents:
            spec = self._spec(check_name(parent, kind="tuning job"))
            if kind == "IdenticalDataAndAlgorithm":
                theirs = spec["training"]
                for key in ("algorithm", "entry_point", "code", "channels"):
                    if theirs.get(key) != training.get(key):
                        raise InvalidArgument(
                            f"warm start IdenticalDataAndAlgorithm: parent {parent!r} has another {key.replace('_', ' ')}; "
                            "use TransferLearning for a changed algorithm or data"
                        )
        return list(parents)

    # -- reads ------------------------------------------------------------------------------

    def _spec(self, name: str) -> dict[str, Any]:
        with self.ws.db.read() as conn:
            spec = conn.execute(sa.select(jt.jobs.c.spec).where(jt.jobs.c.name == name, jt.jobs.c.kind == "tuning")).scalar()
        if spec is None:
            raise NotFound(f"tuning job {name!r} does not exist; `kiln tune ls` lists tuning jobs")
        return orjson.loads(spec)  # type: ignore[no-any-return]

    def get(self, *, name: str) -> TuningJob:
        """One tuning job: its request, state, best training job, every trial and the objective over time.

        Raises:
            NotFound: no tuning job has that name.
        """
        check_name(name, kind="tuning job")
        self.ctx.require("viewer")
        JobService(self.ws, self.ctx).reconcile(names=[name])
        with self.ws.db.read() as conn:
            row = conn.execute(sa.select(jt.jobs).where(jt.jobs.c.name == name, jt.jobs.c.kind == "tuning")).first()
            if row is None:
                raise NotFound(f"tuning job {name!r} does not exist; `kiln tune ls` lists tuning jobs")
            trials = conn.execute(sa.select(t.trials).where(t.trials.c.tuning_job == name).order_by(t.trials.c.number)).all()
        return _tuning_job(row, trials, full=True)

    def list(self, *, state: str | None = None, limit: int = 100) -> list[TuningJob]:
        """Tuning jobs, newest first (with their best training job, without every trial)."""
        self.ctx.require("viewer")
        from kiln.jobs._models import JOB_STATES

        if state is not None and state not in JOB_STATES:
            raise InvalidArgument(f"unknown state {state!r}; one of {list(JOB_STATES)}")
        if not 1 <= limit <= 10_000:
            raise InvalidArgument("limit must be between 1 and 10000")
        q = sa.select(jt.jobs).where(jt.jobs.c.kind == "tuning").order_by(jt.jobs.c.created_at.desc()).limit(limit)
        if state is not None:
            q = q.where(jt.jobs.c.state == state)
        with self.ws.db.read() as conn:
            rows = conn.execute(q).all()
            names = [r.name for r in rows]
            trials = conn.execute(sa.select(t.trials).where(t.trials.c.tuning_job.in_(names)).order_by(t.trials.c.number)).all() if names else []
        by_job: dict[str, list[Any]] = {}
        for tr in trials:
            by_job.setdefault(tr.tuning_job, []).append(tr)
        return [_tuning_job(r, by_job.get(r.name, []), full=False) for r in rows]

    def stop(self, *, name: str) -> TuningJob:
        """Stop a tuning job and every trial it has running; trials that ended stay as they are.

        Raises:
            NotFound: no such tuning job.
            Conflict: it has already ended.
        """
        check_name(name, kind="tuning job")
        self.ctx.require("editor")
        self._spec(name)
        try:
            JobService(self.ws, self.ctx).stop(name=name)
        except Conflict as exc:
            raise Conflict(exc.message.replace("job ", "tuning job ", 1)) from None
        return self.get(name=name)


def _check_builtin_ranges(algorithm: str, ranges: Sequence[Any]) -> None:
    try:
        from kiln.training.builtin import get_algorithm
    except ImportError:  # pragma: no cover - the built-ins ship with Kiln
        return
    declared = get_algorithm(algorithm).hyperparameters
    known = {hp.name for hp in declared} | {a for hp in declared for a in hp.aliases}
    unknown = [r.name for r in ranges if r.name not in known]
    if unknown:
        raise InvalidArgument(f"the built-in {algorithm} has no hyperparameter {unknown[0]!r}; it takes: {', '.join(sorted(known))}")


def _trial(row: Any) -> Trial:
    return Trial(
        number=row.number + 1, training_job=row.job, state=row.state, hyperparameters=orjson.loads(row.hyperparameters),
        objective=row.objective, steps=len(orjson.loads(row.intermediate or "[]")), early_stopped=bool(row.early_stopped),
        failure_reason=row.failure_reason, created_at=row.created_at, ended_at=row.ended_at,
    )


def _tuning_job(row: Any, trials: list[Any], *, full: bool) -> TuningJob:
    from kiln.tuning._driver import best_trial

    spec = orjson.loads(row.spec)
    counts: dict[str, int] = {}
    for tr in trials:
        counts[tr.state] = counts.get(tr.state, 0) + 1
    best = best_trial(trials, spec["objective_type"])
    over_time: list[ObjectivePoint] = []
    if full:
        sign = 1.0 if spec["objective_type"] == "Maximize" else -1.0
        ended = sorted((tr for tr in trials if tr.objective is not None and tr.ended_at is not None), key=lambda tr: (tr.ended_at, tr.number))
        best_so_far: float | None = None
        for tr in ended:
            if best_so_far is None or sign * tr.objective > sign * best_so_far:
                best_so_far = tr.objective
            over_time.append(ObjectivePoint(ended_at=tr.ended_at, trial=tr.number + 1, objective=tr.objective, best=best_so_far))
    return TuningJob(
        name=row.name, state=row.state, failure_reason=row.failure_reason, strategy=spec["strategy"],
        objective_metric_name=spec["objective_metric_name"], objective_type=spec["objective_type"],
        hyperparameter_ranges=spec["hyperparameter_ranges"],
        static_hyperparameters={k: v for k, v in spec["training"].get("hyperparameters", {}).items()},
        max_jobs=spec["max_jobs"], max_parallel_jobs=spec["max_parallel_jobs"], early_stopping_type=spec["early_stopping_type"],
        warm_start_parents=spec.get("warm_start_parents") or [], warm_start_type=spec.get("warm_start_type"),
        random_seed=spec.get("random_seed") or 0, created_at=row.created_at, started_at=row.started_at, ended_at=row.ended_at,
        run_id=row.run_id, counts=counts, best_training_job=_trial(best) if best is not None else None,
        trials=[_trial(tr) for tr in trials] if full else [], objective_over_time=over_time,
    )
