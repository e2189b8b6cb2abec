"""`unlearn-sweep plan`: the DAG without running it. Which nodes the store already holds, which would run and why
(what differs from the newest finished run in the same slot), what the expensive parents are shared by, and the
compute the nodes to run would take on this machine."""

from __future__ import annotations

from orchestrator.app.output import Output
from orchestrator.app.requests import SweepRequest
from orchestrator.app.tracking import open_tracker, tracking_uri
from orchestrator.execute import RunState, Status
from orchestrator.plan import plan_sweep
from orchestrator.plan.cost import Observed, estimate
from orchestrator.plan.sharing import sharing
from orchestrator.report.plan_tables import estimate_lines, kind_counts_line, plan_table
from orchestrator.spec import SpecError, load_sweep
from workloads.runtime import device_here, runtime_facts


def plan(request: SweepRequest, estimate_compute: bool, out: Output) -> int:
    loaded = load_sweep(request.config, list(request.overrides))
    where = loaded.path.name
    tracker = open_tracker(tracking_uri(request.tracking_uri, where, loaded.spec.tracking.uri), loaded.spec.tracking)
    state = RunState(plan_sweep(loaded.spec, list(loaded.settings)), tracker.artifacts)
    if state.plan.input_error:
        raise SpecError(f"{where}: {state.plan.input_error}")
    if state.plan.data_error:
        out.say(f"[yellow]note:[/] {state.plan.data_error}; `run` needs it (keys that depend on the data stay unknown)")
    state.refresh()
    dag, cached = state.plan.dag, {node for node in state.plan.dag if state[node].status == Status.CACHED}
    out.show(plan_table(loaded.spec.name, [row(node, node in cached, tracker) for node in dag]))
    by_kind: dict[str, list[int]] = {}
    for node in dag:
        by_kind.setdefault(node.kind, [0, 0])[node in cached] += 1
    out.show(kind_counts_line({kind: (run, done) for kind, (run, done) in by_kind.items()}))
    out.show(f"[bold]{len(dag.nodes)} nodes: {len(cached)} cached, {len(dag.nodes) - len(cached)} to run")
    for line in sharing(dag):
        out.show(f"shared: {line}")
    to_run = [node for node in dag if node not in cached]
    if estimate_compute and to_run and state.plan.labels is not None:
        device = estimate_device(loaded.spec.device)
        found = estimate(to_run, state.plan.labels, device, observed_times(state, cached, tracker, device))
        for line in estimate_lines(found):
            out.show(line)
    return 0


def observed_times(state: RunState, cached: set, tracker, device) -> list[Observed]:
    """The recorded times of the plan's cached nodes that ran on this device with this process's torch threads:
    what calibrates the estimate (plan/cost.py)."""
    facts = runtime_facts(device)
    runtime = {k: facts[k] for k in ("device", "torch_threads", "torch") if k in facts}
    runs = {state[node].run_id: node for node in cached if state[node].run_id}
    return [
        Observed(runs[run], seconds) for run, seconds in tracker.lineage.recorded_seconds(list(runs), runtime).items()
    ]


def row(node, cached: bool, tracker) -> tuple[str, str, str, str, str]:
    if cached:
        return ("cached", node.kind, node.label, node.short, "")
    if node.key is None:
        return ("run", node.kind, node.label, "-", "key known once its inputs exist")
    return ("run", node.kind, node.label, node.short, tracker.lineage.why_new(node))


def estimate_device(preference: str):
    """The sweep's device if this machine has it, else what this machine has: a sweep for a GPU cluster is planned on
    a laptop too (the estimate names the machine it measured)."""
    try:
        return device_here(preference)
    except ValueError:
        return device_here("auto")
