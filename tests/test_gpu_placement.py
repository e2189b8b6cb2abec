"""Whole-GPU nodes on a cluster whose GPUs hold quarter-GPU actors: Ray places a fractional request on one GPU and a
whole one on a free GPU, so free capacity counted as a cluster-wide sum said "room" where no machine had any. A real
multi-node Ray (ray.cluster_utils.Cluster) with logical GPUs, the pool the `ray` executor uses, real training nodes
recorded into a real MLflow store."""

import time
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from orchestrator.execute.ray_pool import RayPool
from orchestrator.execute.worker import NodeTask
from orchestrator.plan import build_dag
from orchestrator.spec import load_spec
from orchestrator.track import Tracker
from tests.conftest import tiny_quickstart

pytestmark = pytest.mark.deploy

QUARTER = {"num_cpus": 0.5, "num_gpus": 0.25}  # two per machine at most (one CPU each): spread two and two
WHOLE = {"num_cpus": 0.0, "num_gpus": 1.0}  # its CPU share fits: only a free GPU is missing
DEADLINE = 240.0  # seconds: the actors' start-up (torch, MLflow) on a busy machine, and the pool's placement grace


def finish_all(pool: RayPool, started: int, deadline: float) -> list:
    done = []
    while len(done) < started and time.monotonic() < deadline:
        done += pool.finished(timeout=1.0)
    return done


def test_a_whole_gpu_node_runs_while_quarter_gpu_actors_hold_a_piece_of_every_gpu(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=cluster.address)
    sweep = tiny_quickstart(tmp_path / "q.yaml", train__epochs=0.2)
    original = next(n for n in build_dag(load_spec(sweep)) if n.kind == "train_original")
    tracker = Tracker(f"sqlite:///{tmp_path / 'store.db'}", "unlearn-sweep", str(tmp_path / "artifacts"))
    pool = RayPool(tracker, cluster.address)

    def task(resources):
        run = tracker.store.client.create_run(tracker.store.experiment_id, tags={"node_key": original.key})
        return NodeTask(original.key, original.kind, original.config, {}, run.info.run_id, None, resources)

    try:
        deadline = time.monotonic() + DEADLINE
        for _ in range(4):
            assert pool.can_start(QUARTER)
            pool.start(task(QUARTER))
        quarters = finish_all(pool, 4, deadline)
        assert len(quarters) == 4 and not any(f.error or f.lost for f in quarters)
        placed = ray.get([w.handle.placed.remote() for w in pool.workers])
        assert len({p["ray_node"] for p in placed}) == 2  # two quarter actors, idle now, on each machine's GPU

        assert pool.can_start(WHOLE)
        pool.start(task(WHOLE))
        whole = finish_all(pool, 1, deadline)  # before: a whole-GPU actor Ray could not place, waiting forever
        assert len(whole) == 1 and whole[0].error is None and whole[0].lost is None
        assert sum(w.shape == (0.5, 0.25) for w in pool.workers) <= 2  # idle quarters retired to make its room
    finally:
        pool.close()
        ray.shutdown()
        cluster.shutdown()


def test_the_compose_gpu_worker_reserves_the_machines_gpus_and_insists_on_them():
    """The compose worker reserved no GPU: on a GPU machine its container saw none and the sweep ran on its CPUs."""
    import yaml

    services = yaml.safe_load((Path(__file__).parents[1] / "docker" / "compose.yaml").read_text())["services"]
    gpu = services["worker-gpu"]
    assert gpu["extends"] == {"service": "worker"} and gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "device=cuda" in gpu["command"] and "depends_on" in gpu  # a CUDA that does not start stops the sweep
