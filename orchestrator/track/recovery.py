"""What a sweep does first: close the books of sweeps whose driver died (SIGKILL, a lost machine, a store that went
away under them), so their runs stop looking alive and their claims are taken over without waiting.

A RUNNING sweep run is dead when its driver is proven gone (same machine, pid not running), when its heartbeat is
stale, or, with `run --resume`, when it is an earlier run of the sweep being resumed (same sweep name: the user says
it is gone, wherever it ran). Its parent run and its claims still RUNNING are marked KILLED with the reason, except
claims whose result was recorded in full, which are FINISHED (Claims.kill)."""

from __future__ import annotations

from typing import Optional

from orchestrator.track.claims import Claims
from orchestrator.track.tags import SWEEP


def resume_reason(name: str) -> str:
    return f"taken over by `run --resume` of sweep {name}"


def take_over_dead_sweeps(claims: Claims, resume: Optional[str] = None) -> list[str]:
    """Marks dead sweeps and their running claims KILLED (see the module's docstring); `resume`: the name of the sweep
    being resumed. Returns a line per sweep taken over."""
    client, experiment = claims.client, claims.store.experiment_id
    lines = []
    for run in client.search_runs(
        [experiment], f"tags.node_kind = '{SWEEP}' and attributes.status = 'RUNNING'", max_results=500
    ):
        tags = run.data.tags
        why = resume_reason(resume) if resume and tags.get("sweep_name") == resume else claims.dead(run)
        if why is None:
            continue
        sweep_id = tags.get("sweep_id", "").replace("'", "")
        running = [
            r
            for r in client.search_runs(
                [experiment], f"tags.sweep_id = '{sweep_id}' and attributes.status = 'RUNNING'", max_results=5000
            )
            if "node_key" in r.data.tags
        ]
        recorded = sum(claims.kill(r.info.run_id, why) for r in running)
        client.set_tag(run.info.run_id, "killed", why)
        client.set_terminated(run.info.run_id, "KILLED")
        lines.append(
            f"sweep {sweep_id} (run {run.info.run_id}) marked KILLED: {why}; {len(running)} of its node runs "
            f"taken over ({recorded} had recorded their result and count as finished)"
        )
    return lines
