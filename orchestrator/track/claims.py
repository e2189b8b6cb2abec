"""One computation per key, across concurrent sweeps. A sweep claims a node by opening its run; the earliest live
run of a key (start time, run id) computes it and the others wait for its result. The claiming sweep's heartbeat
keeps a run alive; a run silent for STALE_SECONDS, or whose driver process is proven gone (same machine, pid not
running: orchestrator/track/drivers.py), belongs to a dead driver and is marked KILLED and taken over at once. A run
being killed whose result was already recorded in full (manifest written, only its FINISHED status missing) is
finished instead: nothing recorded is thrown away. Both windows can be moved by environment variables."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

from orchestrator.track.artifacts import Artifacts
from orchestrator.track.drivers import driver_tags, proven_dead
from orchestrator.track.inputs import log_dataset
from orchestrator.track.node import TrackedNode
from orchestrator.track.params import flatten
from orchestrator.track.store import Store, system_tags
from orchestrator.track.tags import HEARTBEAT, STALE_SECONDS

# Two claims of one key made at the same moment: a run's start time is stamped before its row is written, and on a
# busy store the write can wait for a lock, so a claim stamped earlier may become visible only after another claimant
# looked. When another sweep is live, a claimant waits this long before looking, so every claim stamped before its
# own is there to be seen (the earliest then wins everywhere). Alone, nobody can race it and it does not wait.
SETTLE_SECONDS = 1.0
# "Another sweep is live" is remembered this long, so a lab's concurrent sweeps make one search per claim (the key's
# runs) instead of two. Only that answer is remembered: waiting SETTLE_SECONDS after the other sweep ended costs a
# second, but claiming without the wait after one started could race its first claims.
LIVE_SWEEPS_MEMORY_SECONDS = 30.0


@dataclass
class Claim:
    run_id: Optional[str]  # ours to compute and record into
    holder: Optional[str] = None  # else: the run of another sweep computing the same key
    artifact_uri: Optional[str] = None  # of our run: the worker records into it without reading the run back


class Claims:
    def __init__(self, store: Store, artifacts: Artifacts):
        self.store, self.client, self.artifacts = store, store.client, artifacts
        self._other_live_seen = -float("inf")  # time.monotonic() when another live sweep was last seen

    def claim(self, node: TrackedNode, sweep_id: str, parent_run_id: str) -> Claim:
        """Opens this node's run, then reads every run of the key in one query: the earliest live claim wins and
        computes it; the others delete their run and wait. A result finished since the lookup is caught here."""
        tags = {
            **system_tags(),
            **driver_tags(),
            "node_key": node.key,
            "node_kind": node.kind,
            "node_slot": node.slot,
            "sweep_id": sweep_id,
            "mlflow.parentRunId": parent_run_id,
            HEARTBEAT: str(time.time()),
            **{f"input.{role}": key for role, key in node.input_keys.items()},
        }
        run = self.client.create_run(self.store.experiment_id, run_name=node.label, tags=tags)
        if self._other_sweep_live(sweep_id):
            time.sleep(SETTLE_SECONDS)
        live, done = [run], False
        for other in self.client.search_runs(
            [self.store.experiment_id],
            f"tags.node_key = '{node.key}'",
            max_results=100,
            order_by=["attributes.start_time DESC"],
        ):
            if other.info.run_id == run.info.run_id:
                continue
            if other.info.status == "FINISHED":
                done = True
            elif other.info.status == "RUNNING" and (why := self.dead(other)):
                done = self.kill(other.info.run_id, why) or done
            elif other.info.status == "RUNNING":
                live.append(other)
        first = min(live, key=lambda r: (r.info.start_time, r.info.run_id))
        finished = self.artifacts.find(node.key) if done and first.info.run_id == run.info.run_id else None
        if first.info.run_id != run.info.run_id or finished is not None:
            self.client.delete_run(run.info.run_id)
            return Claim(None, first.info.run_id if finished is None else finished.run_id)
        self.store.log_params(run.info.run_id, run_params(node))
        log_dataset(self.client, run.info.run_id, node.config.as_dict()["dataset"], node.kind)
        self.artifacts.remember_root(run.info.run_id, run.info.artifact_uri)
        return Claim(run.info.run_id, None, run.info.artifact_uri)

    def holder_alive(self, run_id: str) -> bool:
        """Whether a run that won a claim is still computing (RUNNING with a fresh heartbeat)."""
        run = self.client.get_run(run_id)
        return run.info.status == "RUNNING" and run.info.lifecycle_stage == "active" and self.dead(run) is None

    def heartbeat(self, run_ids) -> None:
        now = str(time.time())
        for run_id in run_ids:
            self.client.set_tag(run_id, HEARTBEAT, now)

    def fail(self, run_id: str, error: str) -> None:
        self.client.set_tag(run_id, "error", error[-4000:])
        self.client.set_terminated(run_id, "FAILED")

    def kill(self, run_id: str, why: str) -> bool:
        """A run that will never finish (its worker or its sweep died); never a run that already finished. One whose
        result was recorded in full is FINISHED instead (True): it only missed its last call."""
        if self.client.get_run(run_id).info.status != "RUNNING":
            return False
        if self.artifacts.recorded(run_id):
            self.client.set_tag(run_id, "finished_late", why)
            self.client.set_terminated(run_id, "FINISHED")
            return True
        self.client.set_tag(run_id, "killed", why)
        self.client.set_terminated(run_id, "KILLED")
        return False

    def dead(self, run) -> Optional[str]:
        """Why a RUNNING run's holder is dead (None: it may be alive)."""
        if proven_dead(run.data.tags):
            return f"its driver (pid {run.data.tags.get('driver.pid')} on this machine) is gone"
        return "its sweep stopped sending heartbeats" if self._stale(run) else None

    def _other_sweep_live(self, sweep_id: str) -> bool:
        if time.monotonic() - self._other_live_seen < LIVE_SWEEPS_MEMORY_SECONDS:
            return True
        runs = self.client.search_runs(
            [self.store.experiment_id], "tags.node_kind = 'sweep' and attributes.status = 'RUNNING'", max_results=50
        )
        # A parent run has a heartbeat; one from before heartbeats counts while it is young.
        fresh = lambda r: (
            not self._stale(r) if HEARTBEAT in r.data.tags else time.time() - r.info.start_time / 1000 < STALE_SECONDS
        )
        if any(r.data.tags.get("sweep_id") != sweep_id and fresh(r) and not proven_dead(r.data.tags) for r in runs):
            self._other_live_seen = time.monotonic()
            return True
        return False

    def _stale(self, run) -> bool:
        return time.time() - float(run.data.tags.get(HEARTBEAT, 0)) > STALE_SECONDS


def run_params(node: TrackedNode) -> dict[str, str]:
    """A node run's params: its config, and what it is about (method, hparams, seed, start) under the same names
    on every kind, so evaluations and attacks of all methods line up in the runs table and its charts. The config
    wins where both name a field (an unlearn node's method and hparams are both)."""
    return flatten("", node.about, {}) | flatten("", node.config.as_dict(), {})
