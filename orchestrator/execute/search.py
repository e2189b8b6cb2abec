"""Hyperparameter searches with Ray Tune. Each trial is a real `unlearn` node (plus the `evaluate` node that scores
it), built exactly as if its hyperparameters had been listed under `methods`: same content keys, cached, claimed and
tracked in MLflow like any other node, so a repeated search re-runs nothing and the best setting, added to the sweep's
methods afterwards, finds its unlearned model already there.

The score compares the trial's evaluation with the retrained control's (the first seed's), by the search's metric
(orchestrator/spec/search.py). A trial under `test_acc_floor` is shifted by 1, below every trial above the floor."""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

from orchestrator.execute.local import LocalPool
from orchestrator.execute.resources import resources_for
from orchestrator.execute.scheduler import run_sweep
from orchestrator.execute.state import RunState, Status
from orchestrator.plan import plan_sweep
from orchestrator.spec import MethodSpec, SearchSpec, SweepSpec
from orchestrator.spec.search import SEARCH_METRICS
from orchestrator.track import Tracker


def tune_space(search: SearchSpec) -> dict:
    from ray import tune

    make = {
        "loguniform": lambda a: tune.loguniform(*a),
        "uniform": lambda a: tune.uniform(*a),
        "randint": lambda a: tune.randint(*a),
        "choice": lambda a: tune.choice(a),
    }
    return {name: make[kind](args) for name, domain in search.space.items() for kind, args in domain.items()}


def plain(point: dict) -> dict:
    """Tune's samples as Python numbers (numpy scalars would change a key's canonical JSON and break the summary)."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in point.items()}


def trial_spec(spec: SweepSpec, search: SearchSpec, point: dict) -> SweepSpec:
    """The sweep as if this trial's setting were its only method, on its first seed: its nodes get the same keys."""
    method = MethodSpec(name=search.name, hparams={**search.hparams, **point})
    return dataclasses.replace(spec, methods=[method], search=[], seeds=spec.seeds[:1])


def score(search: SearchSpec, trial: dict, control: dict) -> tuple[float, bool]:
    mode, metric = SEARCH_METRICS[search.metric]
    value, feasible = metric(trial, control), trial["test_acc"] >= search.test_acc_floor
    return (value if feasible else value + (1.0 if mode == "min" else -1.0)), feasible


def run_trial(point: dict, *, context: dict) -> None:
    """One Tune trial: run (or find) the setting's unlearn and evaluate nodes; report the score."""
    from ray import tune

    from workloads.runtime import configure_torch

    configure_torch(max(1, int(context["num_cpus"])))  # the trial's own CPUs, denormals flushed
    search: SearchSpec = context["search"]
    point = plain(point)
    tracker = Tracker(*context["tracker_args"])
    state = RunState(plan_sweep(trial_spec(context["spec"], search, point)), tracker.artifacts, context["sweep_id"])
    row = state.plan.dag.results[0].nodes
    pool = LocalPool(tracker, trial_device(context["spec"].device, context["num_gpus"]))
    run_sweep(state, pool, tracker, context["parent"], targets=[row.evaluate])
    evaluated, unlearned = state[row.evaluate], state[row.model]
    if not evaluated.status.done:
        raise RuntimeError(f"trial {point}: {evaluated.error or unlearned.error or 'an input failed'}")
    value, feasible = score(search, evaluated.result, context["control"])
    tune.report(
        {
            "score": value,
            "feasible": feasible,
            "forget_acc": evaluated.result["forget_acc"],
            "heldout_forget_acc": evaluated.result["heldout_forget_acc"],
            "test_acc": evaluated.result["test_acc"],
            "unlearn_run_id": unlearned.run_id,
            "cached": unlearned.status == Status.CACHED,
        }
    )


def trial_device(preference: str, num_gpus: float) -> str:
    """A trial's device: the GPU Ray gave it (its `cuda:0`, whatever `cuda:N` the sweep names for local runs), or
    the CPU when it holds none; a GPU it cannot use fails the trial (workloads/runtime.py `worker_device`)."""
    from workloads.runtime import worker_device

    return str(worker_device(preference, num_gpus > 0))


def run_search(
    spec: SweepSpec, search: SearchSpec, tracker, sweep_id: str, parent: str, control: dict, resources: dict
) -> dict[str, Any]:
    """Runs the search on Ray Tune (on the Ray already initialised, or a local one); the best trial and all trials."""
    from ray import tune

    mode = SEARCH_METRICS[search.metric][0]
    context = {
        "spec": spec,
        "search": search,
        "tracker_args": tracker.args,
        "sweep_id": sweep_id,
        "parent": parent,
        "control": control,
        "num_cpus": resources["num_cpus"],
        "num_gpus": resources["num_gpus"],
    }
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, context=context), {"cpu": resources["num_cpus"], "gpu": resources["num_gpus"]}
    )
    with tempfile.TemporaryDirectory(prefix="unlearn-sweep-tune-") as storage:
        grid = tune.Tuner(
            trainable,
            param_space=tune_space(search),
            tune_config=tune.TuneConfig(
                metric="score", mode=mode, search_alg=search_algorithm(search), num_samples=search.num_samples
            ),
            run_config=tune.RunConfig(name=f"{sweep_id}-{search.name}", storage_path=storage, verbose=0),
        ).fit()
    return search_record(search, mode, [trial_record(search, result) for result in grid])


def search_algorithm(search: SearchSpec):
    """Tune's searcher: random samples, or Optuna's TPE, each seeded, at most `max_concurrent` trials at a time."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if search.algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return ConcurrencyLimiter(OptunaSearch(seed=search.seed), max_concurrent=search.max_concurrent)
    return BasicVariantGenerator(random_state=search.seed, max_concurrent=search.max_concurrent)


TRIAL_FIELDS = ("score", "feasible", "forget_acc", "heldout_forget_acc", "test_acc", "unlearn_run_id", "cached")


def trial_record(search: SearchSpec, result) -> dict:
    """One trial for summary.json: its hparams, what it reported, and its error if it failed."""
    error = {"error": str(result.error).strip().splitlines()[-1]} if result.error else {}
    metrics = {k: result.metrics.get(k) for k in TRIAL_FIELDS}
    return {"hparams": {**search.hparams, **plain(result.config)}, **metrics, **error}


def search_record(search: SearchSpec, mode: str, trials: list[dict]) -> dict[str, Any]:
    scored = [t for t in trials if t["score"] is not None]
    best = (min if mode == "min" else max)(scored, key=lambda t: t["score"]) if scored else None
    return {
        "method": search.name,
        "metric": search.metric,
        "mode": mode,
        "algorithm": search.algorithm,
        "test_acc_floor": search.test_acc_floor,
        "num_samples": search.num_samples,
        "best": best,
        "trials": trials,
    }


def run_searches(
    state: RunState, pool, tracker: Tracker, parent: str, retries: int, on_change
) -> tuple[RunState, list[dict]]:
    """The control first (what trials are scored against), then each search; returns the run's state of the sweep
    with every search's best setting added to its methods, and the searches' records for summary.json."""
    import ray
    from ray import tune  # noqa: F401 - fail here, before any work, if Ray Tune is missing

    spec, sweep_id = state.plan.spec, state.sweep_id
    control_node = state.plan.dag.controls[spec.seeds[0]].retrain.evaluate
    run_sweep(state, pool, tracker, parent, retries, on_change, targets=[control_node])
    control = state[control_node]
    if not control.status.done:
        return state, [
            {"method": s.name, "best": None, "trials": [], "error": "the retrained control failed"} for s in spec.search
        ]
    pool.retire_idle()  # Tune's trial actors need the resources our idle workers hold
    started_ray = not ray.is_initialized()
    try:
        searches = [
            run_search(
                spec,
                search,
                tracker,
                sweep_id,
                parent,
                control.result,
                resources_for(spec.resources, "unlearn", search.name, pool.has_gpus),
            )
            for search in spec.search
        ]
    finally:
        if started_ray:
            ray.shutdown()
    best = [MethodSpec(name=s["method"], hparams=s["best"]["hparams"]) for s in searches if s["best"]]
    tracker.lineage.record_search(parent, searches)
    grown = plan_sweep(dataclasses.replace(spec, methods=spec.methods + best, search=[]))
    return RunState(grown, tracker.artifacts, sweep_id), searches
