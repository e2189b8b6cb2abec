"""Training that resumes anywhere: on a real multi-node Ray (ray.cluster_utils.Cluster: a head with no CPUs and two
1-CPU machines, each with a cache folder of its own) whose sweep keeps its artifacts in S3 (moto's server on
loopback), the machine training the original model is removed from the cluster once a training checkpoint of that
node is in the bucket. The node runs again on the other machine, which never saw the first one's cache folder,
resumes from the checkpoint in the bucket (its run tagged `resumed_from_step`), and the sweep ends with every node
computed once, results equal to a fault-free run's, and no training checkpoint left in the bucket."""

import json
import sqlite3
import threading
import time

import boto3
import pytest
import ray
import torch
from ray._private import ray_constants
from ray.cluster_utils import Cluster

from orchestrator.cli import main
from tests.conftest import REPO
from tests.servers import free_port, moto_s3

from .helpers import assert_same_results, finished_once, node_runs, small_sweep

pytestmark = pytest.mark.fault

BUCKET = "lab-mlflow"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def running_key(db: str, kind: str):
    """The content key of the node of `kind` being computed, read straight from the sqlite file (helpers.running)."""
    try:
        with sqlite3.connect(f"file:{db.removeprefix('sqlite:///')}?mode=ro", uri=True, timeout=5) as con:
            found = con.execute(
                "select k.value from runs join tags t on t.run_uuid = runs.run_uuid join tags k on "
                "k.run_uuid = runs.run_uuid where runs.status = 'RUNNING' and t.key = 'node_kind' and t.value = ? "
                "and k.key = 'node_key'",
                (kind,),
            ).fetchone()
    except sqlite3.Error:
        return None
    return found[0] if found else None


def stored_checkpoints(s3) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="artifacts/checkpoints/").get("Contents", [])
    return [o["Key"] for o in listed]


def ports() -> dict:
    names = ("dashboard_agent_listen_port", "metrics_agent_port", "runtime_env_agent_port", "metrics_export_port")
    return {name: free_port() for name in names}


def remove_once_stored(cluster, caches, db, s3, removed: list, stop: threading.Event) -> None:
    """Removes the machine whose cache folder holds the original's training checkpoint once the bucket holds it too,
    then moves that folder away (nothing of it is readable by anyone afterwards)."""
    while not stop.is_set() and not removed:
        time.sleep(0.1)
        key = running_key(db, "train_original")
        if key is None or f"artifacts/checkpoints/{key}/manifest.json" not in stored_checkpoints(s3):
            continue
        for cache in caches:
            if (cache / "checkpoints" / f"{key}.pt").is_file():
                cluster.remove_node(machine_of(cluster, cache))
                cache.rename(cache.with_name(cache.name + "-removed"))
                removed.append(key)
                return


def machine_of(cluster, cache):
    """The worker machine whose cache folder is `cache` (its raylet's environment says so; `worker_nodes` is a set,
    in no order)."""
    marker = f"UNLEARN_SWEEP_CACHE={cache}".encode()
    for node in cluster.worker_nodes:
        raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        with open(f"/proc/{raylet}/environ", "rb") as f:
            if marker in f.read().split(b"\0"):
                return node
    raise AssertionError(f"no machine of the cluster has the cache folder {cache}")


def test_a_node_whose_machine_is_removed_resumes_on_another_from_the_checkpoint_in_s3(tmp_path, monkeypatch):
    epochs = 60  # long enough (about 20 s with its uploads on 2 idle cores) for the machine to go mid-training
    for folder in ("calm", "faults"):
        (tmp_path / folder).mkdir()
    caches = [tmp_path / f"cache-{i}" for i in range(2)]
    with moto_s3(tmp_path) as endpoint:
        for name, value in {**CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": endpoint, "PYTHONPATH": str(REPO)}.items():
            monkeypatch.setenv(name, value)  # the driver's, and each machine's (its raylet's and workers')
        monkeypatch.delenv("UNLEARN_SWEEP_CHECKPOINT_STORE", raising=False)  # auto: artifacts in S3, so there
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        # Actors only on the machines below. Each machine's agents on ports chosen here: the default one (52365) may
        # be held by another Ray on this host, and a raylet that waits for its agents to report the ports they chose
        # gives up after some seconds on a busy host (its agents, Python processes, start slowly there).
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **ports()})
        removed, stop = [], threading.Event()
        try:
            for cache in caches:
                env = {"UNLEARN_SWEEP_CACHE": str(cache)}
                cluster.add_node(num_cpus=1, env_vars=env, **ports())

            calm_sweep = small_sweep(tmp_path / "calm", train__epochs=epochs)
            threads = torch.get_num_threads()
            try:  # the fault-free reference, on one thread as each 1-CPU Ray worker runs
                calm = ["--tracking-uri", f"sqlite:///{tmp_path / 'calm.db'}", "--summary", str(tmp_path / "calm.json")]
                assert main(["run", str(calm_sweep), *calm, "--no-report", "--threads", "1"]) == 0
            finally:
                torch.set_num_threads(threads)

            sweep = small_sweep(
                tmp_path / "faults", train__epochs=epochs, tracking__artifact_location="s3://lab-mlflow/artifacts"
            )
            ray.init(address=cluster.address, runtime_env={"env_vars": {"UNLEARN_SWEEP_CHECKPOINT_STEPS": "10"}})
            db = f"sqlite:///{tmp_path / 'faults.db'}"
            remover = threading.Thread(
                target=remove_once_stored, args=(cluster, caches, db, s3, removed, stop), daemon=True
            )
            remover.start()
            faults = ["--tracking-uri", db, "--summary", str(tmp_path / "faults.json"), "--no-report"]
            code = main(["run", str(sweep), "--executor", "ray", *faults])
            stop.set()
            remover.join()
        finally:
            stop.set()
            ray.shutdown()
            cluster.shutdown()
        left = stored_checkpoints(s3)

    assert removed, "no checkpoint of the original's training was seen in the bucket and on a machine"
    (key,) = removed
    gone = [c.with_name(c.name + "-removed") for c in caches if c.with_name(c.name + "-removed").exists()]
    assert len(gone) == 1 and (gone[0] / "checkpoints" / f"{key}.pt").is_file()  # the removed machine's own copy
    calm, faults = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("calm", "faults"))
    assert code == 0 and faults["nodes"] == {**calm["nodes"], "executed": calm["nodes"]["total"]}
    assert_same_results(calm, faults)
    counts = finished_once(db)
    assert len(counts) == calm["nodes"]["total"] and set(counts.values()) == {1}
    (original,) = [r for r in node_runs(db) if r.data.tags["node_key"] == key and r.info.status == "FINISHED"]
    assert int(original.data.tags["resumed_from_step"]) >= 10
    assert [r.info.status for r in node_runs(db) if r.data.tags["node_key"] == key].count("KILLED") == 1
    assert left == []  # every node's checkpoint removed from the bucket once it was recorded
