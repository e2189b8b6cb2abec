"""The sweep's own run and what connects it to its nodes: a parent run per sweep (its config as params, the summary
and node counts at the end), the best trial of each search, a tag on every reused node run naming the later sweep
that used it, and why a node is new (what differs from the newest finished run in its slot)."""
from __future__ import annotations

import time
from typing import Optional

from mlflow.entities import Metric

from orchestrator.track.claims import TrackedNode
from orchestrator.track.store import Store, flatten


class SweepRuns:
    def __init__(self, store: Store):
        self.store, self.client = store, store.client

    def start(self, name: str, sweep_id: str, spec: dict, executor: str) -> str:
        run = self.client.create_run(self.store.experiment_id, run_name=f"sweep {name}", tags={
            "sweep_id": sweep_id, "sweep_name": name, "node_kind": "sweep", "executor": executor})
        self.store.log_params(run.info.run_id, flatten("", spec, {}))
        return run.info.run_id

    def finish(self, run_id: str, summary: dict, ok: bool, tables: Optional[dict[str, dict]] = None) -> None:
        """The summary, node counts and correlations on the parent run; `tables` (artifact file -> columns) as
        MLflow tables, which its UI shows sortable."""
        self.client.log_dict(run_id, summary, "summary.json")
        for artifact_file, columns in (tables or {}).items():
            if columns and next(iter(columns.values())):
                self.client.log_table(run_id, data=columns, artifact_file=artifact_file)
        now = int(time.time() * 1000)
        metrics = {f"nodes_{k}": v for k, v in summary.get("nodes", {}).items()} | {"wall_seconds": summary.get("wall_seconds", 0.0)}
        metrics |= {f"spearman_{name}": c["spearman"] for name, c in summary.get("correlations", {}).items() if c["spearman"] is not None}
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED")

    def record_search(self, run_id: str, searches: list[dict]) -> None:
        """The best trial of each search on the sweep's parent run: its hparams, score and unlearn run."""
        now = int(time.time() * 1000)
        for search in searches:
            best, name = search.get("best"), search["method"]
            if best is None:
                continue
            self.store.log_params(run_id, flatten(f"search.{name}.best", best["hparams"], {}))
            self.client.set_tag(run_id, f"search.{name}.best_run_id", best["unlearn_run_id"])
            self.client.log_batch(run_id, metrics=[Metric(f"search_{name}_best_{search['metric']}", float(best["score"]), now, 0)])

    def link(self, run_id: str, sweep_id: str, parent_run_id: str) -> None:
        """Mark a reused node run as part of a later sweep, without recomputing it."""
        self.client.set_tag(run_id, f"reused_by.{sweep_id}", parent_run_id)

    def why_new(self, node: TrackedNode) -> str:
        """What differs from the newest finished run in the same slot: config fields, inputs, or the data read."""
        slot = node.slot.replace("'", "\\'")
        runs = self.client.search_runs([self.store.experiment_id], f"tags.node_slot = '{slot}' and attributes.status = 'FINISHED'",
                                       max_results=1, order_by=["attributes.start_time DESC"])
        if not runs:
            return "never run"
        before, now = runs[0].data.params, {k: v[:6000] for k, v in flatten("", node.config, {}).items()}
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            return "changed " + ", ".join(changed[:3]) + (f" (+{len(changed) - 3})" if len(changed) > 3 else "")
        inputs = sorted(role for role, key in node.input_keys.items() if runs[0].data.tags.get(f"input.{role}") != key)
        return f"new input {', '.join(inputs)}" if inputs else "same config, different data or handler version"
