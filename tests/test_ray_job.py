"""A sweep submitted as a Ray Job, as the README says: `ray start --head` with token authentication (Ray 2.60 turns it
on for a local cluster where a token exists; the submitting side then needs `RAY_AUTH_MODE=token`), then
`ray job submit --working-dir . -- unlearn-sweep run ... --executor ray --address auto`.

The job's driver runs inside the cluster, in Ray's unpacked copy of the working directory, which Ray deletes with its
session: a store there would vanish with every result, so the job refuses one before any node runs. With a store
that outlives it, the job records there like a sweep run by hand, and submitting it again computes nothing."""

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, tiny_quickstart
from tests.servers import free_port, server

pytestmark = pytest.mark.deploy

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A head on loopback with token authentication, in its own session (ended with its process group, so other
    Ray clusters on the machine are left alone), and the environment a submitting shell would have."""
    folder = tmp_path_factory.mktemp("ray")
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(16),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),  # the job's driver runs this checkout's code, as an installed package would
    }
    dashboard, temp = free_port(), Path(f"/tmp/ray-{secrets.token_hex(3)}")  # short: socket paths < 108 characters
    command = [
        RAY,
        "start",
        "--head",
        "--block",
        "--num-cpus",
        "2",
        "--port",
        str(free_port()),
        "--dashboard-host",
        "127.0.0.1",
        "--dashboard-port",
        str(dashboard),
        "--temp-dir",
        str(temp),
        "--disable-usage-stats",
    ]
    address = f"http://127.0.0.1:{dashboard}"
    try:
        with server(command, f"{address}/api/version", folder / "head.log", env=env, timeout=180):
            yield address, env
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def submit(ray_head, project: Path, *args: str) -> subprocess.CompletedProcess:
    """`ray job submit --working-dir PROJECT -- unlearn-sweep run sweep.yaml --executor ray --address auto ARGS`."""
    address, env = ray_head
    entrypoint = ["unlearn-sweep", "run", "sweep.yaml", "--executor", "ray", "--address", "auto", *args]
    command = [RAY, "job", "submit", "--address", address, "--working-dir", str(project), "--", *entrypoint]
    done = subprocess.run(command, env=env, cwd=project, capture_output=True, text=True, timeout=600)
    done.stdout = " ".join((done.stdout + done.stderr).split())  # one line: rich wraps what the job prints
    return done


def test_a_ray_job_refuses_a_store_in_its_working_directory_before_any_job(ray_head, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    tiny_quickstart(project / "sweep.yaml")
    done = submit(ray_head, project)  # the quickstart's sqlite:///mlflow.db, in the job's working directory
    out = done.stdout
    assert done.returncode != 0 and "failed" in out, out[-3000:]
    assert "sweep.yaml: tracking.uri: sqlite:///mlflow.db is in this Ray Job's working directory" in out, out[-3000:]
    assert "Pass a store that outlives the job: --tracking-uri sqlite:////" in out
    assert "exit code 2" in out or "exited with code 2" in out, out[-3000:]
    assert "sweep quickstart (" not in out  # refused before the sweep started: no parent run, no node
    assert not list(project.rglob("mlflow.db"))  # and nothing written beside the submitted files either

    tiny_quickstart(project / "sweep.yaml", tracking__artifact_location="mlartifacts")
    done = submit(ray_head, project, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert done.returncode != 0 and "sweep.yaml: tracking.artifact_location: mlartifacts is in this Ray" in done.stdout
    assert not (tmp_path / "mlflow.db").exists()


def test_a_ray_job_records_into_a_store_that_outlives_it_and_computes_nothing_the_second_time(ray_head, tmp_path):
    project = tmp_path / "project"  # what --working-dir ships to the cluster
    project.mkdir()
    tiny_quickstart(project / "sweep.yaml")  # no artifact location: checkpoints go beside the store
    store = tmp_path / "store"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    store.mkdir()
    first = tmp_path / "first.json"
    done = submit(ray_head, project, "--tracking-uri", uri, "--summary", str(first))
    assert done.returncode == 0 and "succeeded" in done.stdout, done.stdout[-3000:]
    assert "Ray deletes with its session" not in done.stdout  # the summary and the report were written elsewhere
    summary = json.loads(first.read_text())
    assert summary["executor"] == "ray" and summary["nodes"]["executed"] == summary["nodes"]["total"] == 41
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unlearn-sweep")
    assert experiment.artifact_location == (store / "mlartifacts").resolve().as_uri()  # beside the store
    parent = client.search_runs(
        [experiment.experiment_id], f"tags.sweep_id = '{summary['sweep_id']}' and tags.node_kind = 'sweep'"
    )[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["executor"] == "ray"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"summary.json", "report"}

    done = submit(ray_head, project, "--tracking-uri", uri)  # the default --summary: in the job's working directory
    assert done.returncode == 0 and "nothing to compute or record" in done.stdout, done.stdout[-3000:]
    assert "0 executed, 41 cached, 0 failed" in done.stdout
    assert "summary.json and report are written in this Ray Job's working directory" in done.stdout
    assert len(client.search_runs([experiment.experiment_id], "tags.node_kind = 'sweep'")) == 1  # nothing recorded
