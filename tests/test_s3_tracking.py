"""MLflow against a tracking server with an S3 artifact store, both real processes on loopback (mlflow server with a
sqlite backend, moto's S3 server): checkpoints land in the bucket through boto3, a second sweep reuses them from
there, a fresh process loads them, and the credentials appear in no param, tag, log line, summary, stored object
or byte of the server's database."""

import json
import os
import subprocess
import sys

import boto3
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, tiny_quickstart
from tests.servers import mlflow_server, moto_s3

pytestmark = pytest.mark.deploy

SECRET = "s3cr3t-never-logged-1f6a"
KEY_ID = "AKIAUNLEARNSWEEPTEST"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("s3")
    credentials = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
    with moto_s3(folder) as endpoint:
        env = {**credentials, "MLFLOW_S3_ENDPOINT_URL": endpoint}
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET, region_name="us-east-1"
        )
        s3.create_bucket(Bucket="lab-mlflow")
        with mlflow_server(folder, "s3://lab-mlflow/artifacts", env) as uri:
            yield {"folder": folder, "s3": s3, "uri": uri, "env": {**os.environ, **env, "MLFLOW_TRACKING_URI": uri}}


def run_sweep(stack, sweep, name, *overrides):
    """The CLI in its own process, in a folder of its own (nothing may be written next to it)."""
    workdir = stack["folder"] / name
    workdir.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", str(sweep), *overrides, "--summary", "summary.json"],
        cwd=workdir,
        env={**stack["env"], "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workdir, json.loads((workdir / "summary.json").read_text()), done.stdout + done.stderr


def test_checkpoints_go_to_s3_are_reused_from_there_and_credentials_stay_secret(stack, tmp_path):
    sweep = tiny_quickstart(tmp_path / "q.yaml")
    first_dir, first, first_log = run_sweep(stack, sweep, "first")
    assert first["nodes"]["executed"] == 41
    assert not (first_dir / "mlartifacts").exists() and not (first_dir / "mlflow.db").exists()  # all on the server

    keys = [
        o["Key"]
        for page in stack["s3"].get_paginator("list_objects_v2").paginate(Bucket="lab-mlflow")
        for o in page.get("Contents", [])
    ]
    original = first["original"]["run_id"]
    assert any(k.startswith("artifacts/") and k.endswith(f"/{original}/artifacts/model.pt") for k in keys)
    assert sum(k.endswith("/manifest.json") for k in keys) == 41

    # A second sweep changing one hparam reuses the parents from the bucket (verified by sha256 on download).
    second_dir, second, second_log = run_sweep(stack, sweep, "second", "methods.3.hparams.sigma=0.3")
    assert second["nodes"]["executed"] == 6 and second["original"]["run_id"] == original

    # The same sweep again finds it finished through the server, its nodes still verifying in the bucket: no new run.
    client = MlflowClient(stack["uri"])
    experiment = client.get_experiment_by_name("unlearn-sweep").experiment_id
    before = len(client.search_runs([experiment], "", max_results=1000))
    third_dir, third, third_log = run_sweep(stack, sweep, "third", "methods.3.hparams.sigma=0.3")
    assert (
        third["sweep_id"] == second["sweep_id"]
        and third["rerun"]["nodes"]["executed"] == 0  # this run's own counts, beside the summary that sweep recorded
        and "nothing to compute" in " ".join(third_log.split())
    )
    assert len(client.search_runs([experiment], "", max_results=1000)) == before

    # A fresh process loads the original's checkpoint from S3 and gets the model the sweep trained.
    load = (
        "import sys, torch; from orchestrator.track import Tracker; t = Tracker(sys.argv[1], 'unlearn-sweep'); "
        "state = t.artifacts.load_state(sys.argv[2]); print(len(state), sum(v.numel() for v in state.values()))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", load, stack["uri"], original],
        env={**stack["env"], "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    tensors, numbers = map(int, loaded.stdout.split())
    assert tensors > 4 and numbers > 1000

    runs = client.search_runs([experiment], "", max_results=1000)
    recorded = [json.dumps([r.data.params, r.data.tags]) for r in runs]
    texts = (
        recorded
        + [first_log, second_log, third_log]
        + [(d / "summary.json").read_text() for d in (first_dir, second_dir, third_dir)]
    )
    for text in texts:
        assert SECRET not in text and KEY_ID not in text
    # Nor in any byte the store keeps: every object in the bucket (checkpoints, results, manifests, tables, figures),
    # the tracking server's database and its log.
    everything = [
        o["Key"]
        for page in stack["s3"].get_paginator("list_objects_v2").paginate(Bucket="lab-mlflow")
        for o in page.get("Contents", [])
    ]
    for key in everything:
        body = stack["s3"].get_object(Bucket="lab-mlflow", Key=key)["Body"].read()
        assert SECRET.encode() not in body and KEY_ID.encode() not in body, key
    for stored in (stack["folder"] / "server.db", stack["folder"] / "mlflow-server.log"):
        data = stored.read_bytes()
        assert SECRET.encode() not in data and KEY_ID.encode() not in data, stored.name
