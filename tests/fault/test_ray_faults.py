"""Worker faults on a real multi-node Ray (ray.cluster_utils.Cluster): while the sweep runs, the node training the
original model (and whatever else runs there) is removed from the cluster; later a worker running a relearning
attack ends its own process abruptly (an out-of-memory kill) and a distance node raises MemoryError (both simulated:
see ray_hooks.py). The sweep finishes with every node computed exactly once and results equal to a fault-free run's.
(A worker process SIGKILLed mid-node is tests/test_ray_executor.py's.)"""

import json
import os
import threading
import time

import pytest
import ray
import torch
from ray._private import ray_constants
from ray.cluster_utils import Cluster

from orchestrator.cli import main
from tests.conftest import REPO

from .helpers import assert_same_results, finished_once, node_runs, running, small_sweep

pytestmark = pytest.mark.fault


def busy_actor_pids() -> set[int]:
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0].startswith(b"ray::NodeActor.run"):
                    pids.add(int(pid))
        except OSError:
            continue
    return pids


def parent_pid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def remove_the_node_training_the_original(cluster: Cluster, db: str, removed: list, stop: threading.Event) -> None:
    while not stop.is_set() and not removed:
        time.sleep(0.2)
        if not running(db, "train_original"):
            continue
        parents = {parent_pid(pid) for pid in busy_actor_pids()}  # a worker process is its node's raylet's child
        for node in cluster.worker_nodes:
            if node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid in parents:
                cluster.remove_node(node)
                removed.append(node.unique_id)
                return


def test_a_removed_node_and_an_actor_that_runs_out_of_memory_leave_the_results_unchanged(tmp_path, monkeypatch):
    sweep = small_sweep(tmp_path, train__epochs=20, relearn__k=[0])
    threads = torch.get_num_threads()
    try:  # the fault-free reference, on one thread as each 1-CPU Ray worker runs
        assert (
            main(
                [
                    "run",
                    str(sweep),
                    "--tracking-uri",
                    f"sqlite:///{tmp_path / 'calm.db'}",
                    "--summary",
                    str(tmp_path / "calm.json"),
                    "--no-report",
                    "--threads",
                    "1",
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)

    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the workers import the hook from tests/
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # actors only on the nodes below
    for _ in range(3):
        cluster.add_node(num_cpus=1)
    marker = tmp_path / "oom"
    ray.init(
        address=cluster.address,
        runtime_env={
            "worker_process_setup_hook": "tests.fault.ray_hooks.exit_once_in_kind",
            "env_vars": {
                "FAULT_EXIT_KIND": "relearn",
                "FAULT_RAISE_KIND": "distance",
                "FAULT_MARKER": str(marker),
                "PYTHONPATH": str(REPO),
            },
        },
    )
    db = f"sqlite:///{tmp_path / 'faults.db'}"
    removed, stop = [], threading.Event()
    remover = threading.Thread(
        target=remove_the_node_training_the_original, args=(cluster, db, removed, stop), daemon=True
    )
    remover.start()
    try:
        code = main(
            [
                "run",
                str(sweep),
                "--executor",
                "ray",
                "--tracking-uri",
                db,
                "--summary",
                str(tmp_path / "faults.json"),
                "--no-report",
            ]
        )
    finally:
        stop.set()
        remover.join()
        ray.shutdown()
        cluster.shutdown()
    assert removed, "no node was seen training the original"
    assert marker.exists() and marker.with_name("oom.raised").exists(), (
        "no worker ran a relearning attack or a distance"
    )
    calm, faults = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("calm", "faults"))
    assert code == 0 and faults["nodes"] == {**calm["nodes"], "executed": calm["nodes"]["total"]}
    assert_same_results(calm, faults)
    counts = finished_once(db)
    assert len(counts) == calm["nodes"]["total"] and set(counts.values()) == {1}
    lost = [r for r in node_runs(db) if r.info.status == "KILLED"]
    # The relearning attack whose worker exited, and what the removed node was running (the original's training,
    # and whatever else had been placed there).
    assert {"relearn", "distance"} <= {r.data.tags["node_kind"] for r in lost} and len(lost) >= 3
    (raised,) = [r for r in lost if r.data.tags["node_kind"] == "distance"]  # re-run in a fresh actor, not failed
    assert "out of memory" in raised.data.tags["killed"]
    assert all(r.data.tags["killed"].startswith("worker died") for r in lost)
