"""The `ray` executor on a real Ray: same results as the local executor, a worker killed mid-node on a multi-node
cluster (ray.cluster_utils.Cluster) without duplicate runs, fractional GPUs packing several nodes per GPU."""

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest
import ray
import torch
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from orchestrator.cli import main
from tests.conftest import tiny_quickstart

pytestmark = pytest.mark.deploy

IGNORED = {"run_id", "wall_seconds", "sweep_id", "executor"}


def assert_same_metrics(a, b, path="summary"):
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in set(a) - IGNORED:
            assert_same_metrics(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_metrics(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), path
    else:
        assert a == b, path


def run_cli(tmp_path, sweep, name, *extra):
    summary = tmp_path / f"{name}.json"
    code = main(
        ["run", str(sweep), "--tracking-uri", f"sqlite:///{tmp_path / name}.db", "--summary", str(summary), *extra]
    )
    return code, json.loads(summary.read_text())


def node_runs(uri):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unlearn-sweep")
    runs = client.search_runs(
        [experiment.experiment_id], "tags.node_kind != 'sweep'", max_results=5000, run_view_type=3
    )
    return [r for r in runs if "node_key" in r.data.tags]  # node runs: not the links to cached nodes or the result runs


def test_ray_executor_gives_the_local_executors_results(tmp_path):
    # Memorization in two shards: on Ray they train side by side, and the merged scores must not care.
    sweep = tiny_quickstart(
        tmp_path / "q.yaml", tracking__artifact_location=str(tmp_path / "artifacts"), memorization__shards=2
    )
    threads = torch.get_num_threads()
    try:  # one thread, as each 1-CPU Ray worker runs: float results then agree bit for bit
        code, local = run_cli(tmp_path, sweep, "local", "--threads", "1")
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    code, on_ray = run_cli(tmp_path, sweep, "ray", "--executor", "ray")  # starts and stops its own local Ray
    assert code == 0 and not ray.is_initialized()
    assert on_ray["executor"] == "ray" and on_ray["nodes"] == local["nodes"] == {
        **local["nodes"],
        "executed": 43,
        "failed": 0,
    }
    assert_same_metrics(local, on_ray)
    for name in ("local", "ray"):  # every node ran on exactly its one core, denormals flushed in all its threads
        runs = [r for r in node_runs(f"sqlite:///{tmp_path / name}.db") if r.info.status == "FINISHED"]
        assert len(runs) == 43
        assert {(r.data.tags["runtime.torch_threads"], r.data.tags["runtime.flush_denormal"]) for r in runs} == {
            ("1", "True")
        }


def kill_a_worker_mid_training(uri: str, killed: list, stop: threading.Event):
    """Once the original or the retrained model has been training for a second, SIGKILL a Ray worker process that
    is executing a node (its title is `ray::NodeActor.run`; at that point only those two nodes can be running)."""
    while not stop.is_set() and not killed:
        time.sleep(0.1)
        try:
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name("unlearn-sweep")
            runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'") if experiment else []
        except Exception:  # noqa: BLE001 - the store may not exist yet
            continue
        if not any(
            r.data.tags.get("node_kind") in ("train_original", "train_retrain")
            and time.time() * 1000 - r.info.start_time > 1000
            for r in runs
        ):
            continue
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    title = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::NodeActor.run"):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return


def test_multi_node_cluster_survives_a_worker_killed_mid_node_without_duplicate_runs(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    try:
        # Longer training, so the kill lands while a node is running.
        sweep = tiny_quickstart(
            tmp_path / "q.yaml", tracking__artifact_location=str(tmp_path / "artifacts"), train__epochs=40
        )
        killed, stop = [], threading.Event()
        killer = threading.Thread(
            target=kill_a_worker_mid_training, args=(f"sqlite:///{tmp_path / 'cluster'}.db", killed, stop), daemon=True
        )
        killer.start()
        code, summary = run_cli(tmp_path, sweep, "cluster", "--executor", "ray")
        stop.set()
        killer.join()
        assert ray.is_initialized()  # the driver's Ray connection outlived the worker
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed, "no worker was seen running a node"
    assert code == 0 and summary["nodes"]["executed"] == summary["nodes"]["total"] == 41
    runs = node_runs(f"sqlite:///{tmp_path / 'cluster'}.db")
    finished = Counter(r.data.tags["node_key"] for r in runs if r.info.status == "FINISHED")
    assert len(finished) == 41 and set(finished.values()) == {1}  # every node finished exactly once
    died = [r for r in runs if r.info.status == "KILLED"]
    assert len(died) == 1 and died[0].data.tags["killed"].startswith("worker died")
    assert died[0].data.tags["node_key"] in finished  # ... and was re-run elsewhere


def test_fractional_gpus_pack_several_nodes_on_one_gpu(tmp_path):
    # A logical GPU: Ray schedules by the numbers; the workers see no CUDA device and run on the CPU.
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False)
    try:
        # Built-in shares on a cluster with GPUs: 1 GPU for training kinds, 0.25 for the rest.
        sweep = tiny_quickstart(
            tmp_path / "q.yaml",
            tracking__artifact_location=str(tmp_path / "artifacts"),
            resources={"default": {"num_cpus": 0.5}},
        )
        code, summary = run_cli(tmp_path, sweep, "gpu", "--executor", "ray")
    finally:
        ray.shutdown()
    assert code == 0
    runs = node_runs(f"sqlite:///{tmp_path / 'gpu'}.db")
    training = [r for r in runs if r.data.tags["node_kind"] in ("memorization", "train_original", "train_retrain")]
    quarters = [r for r in runs if r not in training]
    assert peak_overlap(training) == 1  # a whole GPU each: original and retrain never share it
    assert 3 <= peak_overlap(quarters) <= 4  # a quarter each: several at once, never more than four


def peak_overlap(runs) -> int:
    events = sorted([(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak
