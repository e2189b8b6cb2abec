"""The sweep's own run and what connects it to its nodes: a parent run per sweep (its config as params, progress
while it runs, the summary, node counts, tables, figures and report at the end), the best trial of each search,
a light child run for every node it found cached (pointing at the run that holds the result), a result run per
model and seed of the results table with a shared view of the runs table listing them, and why a node is new (what
differs from the newest finished run in its slot).

Only node runs carry `node_key`: link and result runs are found by no lookup, claim or count of executed nodes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from mlflow.entities import Metric, RunTag

from orchestrator.track.drivers import driver_tags
from orchestrator.track.finished import FINGERPRINT, NODES
from orchestrator.track.inputs import log_dataset
from orchestrator.track.node import TrackedNode
from orchestrator.track.params import chunks, flatten
from orchestrator.track.store import Store, system_tags
from orchestrator.track.tags import HEARTBEAT, LINK, RESULT, SWEEP
from orchestrator.track.ui import RESULTS_VIEW, compare_path, ui_path

# A view of the runs table kept in an experiment tag, opened by `?viewStateShareKey=<name>` (MLflow 3's shared views).
VIEW_TAG = "mlflow.sharedViewState."


class SweepLineage:
    def __init__(self, store: Store):
        self.store, self.client = store, store.client

    def start(self, name: str, sweep_id: str, spec: dict, executor: str, fingerprint: Optional[str] = None) -> str:
        """The sweep's parent run; `fingerprint` (of the sweep's inputs) lets an identical re-run find it finished."""
        run = self.client.create_run(
            self.store.experiment_id,
            run_name=f"sweep {name}",
            tags={
                **system_tags(),
                **driver_tags(),
                "sweep_id": sweep_id,
                "sweep_name": name,
                "node_kind": SWEEP,
                "executor": executor,
                HEARTBEAT: str(time.time()),
                **({FINGERPRINT: fingerprint} if fingerprint else {}),
            },
        )
        self.store.log_params(run.info.run_id, flatten("", spec, {}))
        if spec.get("dataset"):
            log_dataset(self.client, run.info.run_id, spec["dataset"], SWEEP)
        return run.info.run_id

    def progress(self, run_id: str, done: int, total: int, counts: dict[str, int]) -> None:
        """Nodes done so far, as the runs table shows them while the sweep runs (tag `progress`, metric
        `nodes_done` by step)."""
        text = f"{done}/{total} ({counts['executed']} executed, {counts['cached']} cached, {counts['failed']} failed)"
        self.client.log_batch(
            run_id,
            metrics=[Metric("nodes_done", float(done), int(time.time() * 1000), done)],
            tags=[RunTag("progress", text), RunTag("progress.total", str(total)), RunTag(HEARTBEAT, str(time.time()))],
        )

    def finish(
        self,
        run_id: str,
        summary: dict,
        ok: bool,
        tables: Optional[dict[str, dict]] = None,
        killed: Optional[str] = None,
        nodes: Optional[dict[str, str]] = None,
    ) -> None:
        """The summary, node counts and correlations on the parent run; `tables` (artifact file -> columns) as
        MLflow tables, which its UI shows sortable; `nodes` (node key -> the run holding its result) for a sweep
        that completed, which an identical re-run checks (finished.py). `killed`: why the sweep was stopped (the
        run ends KILLED)."""
        self.client.log_dict(run_id, summary, "summary.json")
        if ok and nodes and not killed:
            self.client.log_dict(run_id, nodes, NODES)
        for artifact_file, columns in (tables or {}).items():
            if columns and next(iter(columns.values())):
                self.client.log_table(run_id, data=columns, artifact_file=artifact_file)
        now = int(time.time() * 1000)
        metrics = {f"nodes_{k}": v for k, v in summary.get("nodes", {}).items()} | {
            "wall_seconds": summary.get("wall_seconds", 0.0)
        }
        metrics |= {
            f"spearman_{name}": c["spearman"]
            for name, c in summary.get("correlations", {}).items()
            if c["spearman"] is not None
        }
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        if killed:
            self.client.set_tag(run_id, "killed", killed)
        self.client.set_terminated(run_id, "KILLED" if killed else "FINISHED" if ok else "FAILED")

    def record_search(self, run_id: str, searches: list[dict]) -> None:
        """The best trial of each search on the sweep's parent run: its hparams, score and unlearn run."""
        now = int(time.time() * 1000)
        for search in searches:
            best, name = search.get("best"), search["method"]
            if best is None:
                continue
            self.store.log_params(run_id, flatten(f"search.{name}.best", best["hparams"], {}))
            self.client.set_tag(run_id, f"search.{name}.best_run_id", best["unlearn_run_id"])
            self.client.log_batch(
                run_id, metrics=[Metric(f"search_{name}_best_{search['metric']}", float(best["score"]), now, 0)]
            )

    def link(self, node: TrackedNode, run_id: str, sweep_id: str, parent_run_id: str) -> str:
        """A node found cached, as part of a later sweep without recomputing it: a tag on the run holding it
        (`reused_by.<sweep>`), and a light child run of the sweep pointing at that run, so the sweep shows all it
        used. The child has the node's name and setting (a tag), no node_key, no params, no artifacts."""
        self.client.set_tag(run_id, f"reused_by.{sweep_id}", parent_run_id)
        note = (
            f"Cached: this sweep used the result of run "
            f"[{run_id}](#/experiments/{self.store.experiment_id}/runs/{run_id}) "
            f"({node.kind}, key {node.key[:12]}) instead of computing it again."
        )
        run = self.client.create_run(
            self.store.experiment_id,
            run_name=f"{node.label} (cached)",
            tags={
                **system_tags(),
                "node_kind": LINK,
                "sweep_id": sweep_id,
                "mlflow.parentRunId": parent_run_id,
                "linked.run_id": run_id,
                "linked.node_key": node.key,
                "linked.node_kind": node.kind,
                "mlflow.note.content": note,
                **({"setting": str(node.about["setting"])} if "setting" in node.about else {}),
            },
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def record_results(
        self, parent_run_id: str, sweep_id: str, rows: list[dict], dataset: Optional[dict] = None
    ) -> None:
        """One run per model and seed of the results table (`rows`: name, params, metrics, curves, tags), kind
        `result`: what the runs table, its compare view and parallel-coordinates chart line up by setting. They hold
        numbers of several nodes under this sweep's relearning and LMC settings, so they belong to the sweep, not to a
        node; they are top-level runs (tagged with the sweep and its run) because the runs table folds children away,
        and the experiment's shared view `results` (RESULTS_VIEW) lists the latest sweep's, grouped by setting. The
        sweep's run and every result run link MLflow's compare view of the method settings' runs."""
        experiment = self.store.experiment_id
        link = f"#/experiments/{experiment}/runs/{parent_run_id}"
        created = [self._result_run(row, sweep_id, parent_run_id, dataset) for row in rows]
        if not rows:
            return
        methods = [run_id for run_id, row in zip(created, rows) if row["tags"].get("role") == "method"]
        compare = f"[Compare the method settings' runs]({compare_path(experiment, methods)})" if methods else ""
        view = f"[the runs table, grouped by setting]({ui_path(experiment)})"
        self.client.set_tag(parent_run_id, "mlflow.note.content", f"Results of this sweep: {view}. {compare}".strip())
        for run_id in created:
            note = f"A result of sweep {sweep_id} (run [{parent_run_id}]({link})). {compare}".strip()
            self.client.set_tag(run_id, "mlflow.note.content", note)
        self.client.set_experiment_tag(experiment, VIEW_TAG + RESULTS_VIEW, json.dumps(results_view(rows, sweep_id)))

    def _result_run(self, row: dict, sweep_id: str, parent_run_id: str, dataset: Optional[dict]) -> str:
        run = self.client.create_run(
            self.store.experiment_id,
            run_name=row["name"],
            tags={
                **system_tags(),
                **row.get("tags", {}),
                "node_kind": RESULT,
                "sweep_id": sweep_id,
                "sweep_run_id": parent_run_id,
            },
        )
        run_id, now = run.info.run_id, int(time.time() * 1000)
        self.store.log_params(run_id, {k: str(v) for k, v in row["params"].items()})
        metrics = [Metric(k, float(v), now, 0) for k, v in row["metrics"].items()]
        metrics += [Metric(k, float(v), now, int(s)) for k, curve in row.get("curves", {}).items() for s, v in curve]
        for batch in chunks(metrics, 1000):
            self.client.log_batch(run_id, metrics=batch)
        if dataset:
            log_dataset(self.client, run_id, dataset, "evaluation")
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def log_report(self, run_id: str, folder: Path) -> None:
        """Figures (PNG, SVG) and the HTML report as artifacts of the sweep's run, under `report/`."""
        self.client.log_artifacts(run_id, str(folder), "report")

    def recorded_seconds(self, run_ids: list[str], runtime: dict[str, str]) -> dict[str, float]:
        """{run id: its recorded `node_seconds`} for the runs that ran with these runtime facts (device, torch threads
        and version, as `runtime.*` tags) from start to end (not resumed from a training checkpoint), for the plan's
        estimate."""
        out = {}
        for batch in chunks(sorted(set(run_ids)), 100):
            quoted = ", ".join(f"'{run_id}'" for run_id in batch)
            for run in self.client.search_runs(
                [self.store.experiment_id], f"attributes.run_id IN ({quoted})", max_results=len(batch)
            ):
                tags = run.data.tags
                same = all(tags.get(f"runtime.{k}") == str(v) for k, v in runtime.items())
                if same and "resumed_from_step" not in tags and "node_seconds" in run.data.metrics:
                    out[run.info.run_id] = run.data.metrics["node_seconds"]
        return out

    def why_new(self, node: TrackedNode) -> str:
        """What differs from the newest finished run in the same slot: config fields, inputs, or the data read."""
        slot = node.slot.replace("'", "\\'")
        runs = self.client.search_runs(
            [self.store.experiment_id],
            f"tags.node_slot = '{slot}' and attributes.status = 'FINISHED'",
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        if not runs:
            return "never run"
        now = {k: v[:6000] for k, v in flatten("", node.config.as_dict(), {}).items()}
        about = flatten("", node.about, {})  # what the run is about, not its config: no reason for it to be new
        before = {k: v for k, v in runs[0].data.params.items() if k in now or k not in about}
        changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
        if changed:
            return "changed " + ", ".join(changed[:3]) + (f" (+{len(changed) - 3})" if len(changed) > 3 else "")
        inputs = sorted(role for role, key in node.input_keys.items() if runs[0].data.tags.get(f"input.{role}") != key)
        return f"new input {', '.join(inputs)}" if inputs else "same config, different data or handler version"


RUN_NAME = "attributes.`Run Name`"  # the runs table's column id of run names


def results_view(rows: list[dict], sweep_id: str) -> dict:
    """The runs table showing the latest sweep's result runs (drop the sweep_id clause of its filter to compare every
    sweep's), grouped by setting with the seeds' mean (MLflow's `average`), ordered by held-out forget accuracy after
    the strongest attack (most resistant first). The numbers come first, the strongest attack's beside the run names
    (a 1,400-pixel window shows them with MLflow's assistant open), then the role, reading and the hparams that vary
    across the method settings."""
    present = {name for row in rows for name in row["metrics"]}
    attacks = sorted({int(m.split("_")[1][1:]) for m in present if m.startswith("relearned_k")}, reverse=True)
    wanted = [m for k in attacks[:1] for m in (f"relearned_k{k}_heldout_forget_acc", f"recovery_k{k}")]
    wanted += ["test_acc", "forget_acc", "heldout_forget_acc"]
    wanted += [m for k in attacks[1:] for m in (f"relearned_k{k}_heldout_forget_acc", f"recovery_k{k}")]
    wanted = [m for m in [*wanted, "l2_to_original", "loss_barrier"] if m in present]
    columns = [f"metrics.`{m}`" for m in wanted]
    columns += ["tags.`role`", "tags.`reading`"] + [f"params.`{p}`" for p in varying_hparams(rows)]
    width = lambda texts, most: min(most, 40 + 7 * max(len(text) for text in texts))
    view = {
        "searchFilter": f"tags.node_kind = '{RESULT}' and tags.sweep_id = '{sweep_id}'",
        "selectedColumns": columns,
        "columnOrder": [RUN_NAME, *columns],
        "columnWidths": {
            RUN_NAME: width([f"Group: {row['tags']['setting']}" for row in rows] + [row["name"] for row in rows], 420),
            "tags.`reading`": width([row["tags"].get("reading", "") for row in rows], 260),
            **{column: 150 for column in columns if column.startswith("metrics.")},  # a group's "<mean> (average)"
        },
        # A row per setting with its seeds' mean (MLflow's `average`), the seeds' rows under it.
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": "setting"}]},
        "useGroupedValuesInCharts": True,
    }
    strongest = f"relearned_k{attacks[0]}_heldout_forget_acc" if attacks else None
    return view | ({"orderByKey": f"metrics.`{strongest}`", "orderByAsc": True} if strongest in present else {})


def varying_hparams(rows: list[dict]) -> list[str]:
    """The `hparams.*` params of the result runs: the hparams that tell the sweep's settings apart."""
    return sorted({name for row in rows for name in row["params"] if name.startswith("hparams.")})
