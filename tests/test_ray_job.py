"""A sweep submitted as a Ray Job, as the cluster guide says: `ray start --head`, then `ray job submit --working-dir .
-- unlearn-sweep run ... --executor ray --address auto`. The job's driver runs inside the cluster and records into
the same MLflow store as a sweep run by hand; submitting it again executes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_quickstart
from tests.servers import free_port

pytestmark = pytest.mark.deploy

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture
def ray_head(tmp_path):
    # Token authentication guards real clusters (cluster/README.md); a head on loopback for one test goes without.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    dashboard = free_port()
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            "--num-cpus",
            "2",
            "--port",
            str(free_port()),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_a_sweep_submitted_as_a_ray_job_runs_on_the_cluster_and_is_cached_the_second_time(ray_head, tmp_path):
    address, env = ray_head
    project = tmp_path / "project"  # what --working-dir ships to the cluster
    project.mkdir()
    tiny_quickstart(project / "sweep.yaml", tracking__artifact_location=str(tmp_path / "artifacts"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summaries = []
    for attempt in ("first", "again"):
        summary = tmp_path / f"{attempt}.json"
        done = subprocess.run(
            [
                RAY,
                "job",
                "submit",
                "--address",
                address,
                "--working-dir",
                str(project),
                "--",
                "unlearn-sweep",
                "run",
                "sweep.yaml",
                "--executor",
                "ray",
                "--address",
                "auto",
                "--tracking-uri",
                uri,
                "--summary",
                str(summary),
            ],
            env=env,
            cwd=project,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0 and "succeeded" in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
        summaries.append(json.loads(summary.read_text()))
    first, again = summaries
    assert first["executor"] == "ray" and first["nodes"]["executed"] == first["nodes"]["total"] == 41
    assert again["nodes"]["executed"] == 0 and again["nodes"]["cached"] == 41
    client = MlflowClient(uri)
    parent = client.search_runs(
        [client.get_experiment_by_name("unlearn-sweep").experiment_id],
        f"tags.sweep_id = '{first['sweep_id']}' and tags.node_kind = 'sweep'",
    )[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["executor"] == "ray"
