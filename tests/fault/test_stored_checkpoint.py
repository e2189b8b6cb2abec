"""A training checkpoint kept in the artifact store as well as on the training machine (orchestrator/track/
checkpoints.py): a node whose machine was lost resumes on another machine, which has no local copy, from the stored one
(the last whose upload completed) and ends with the uninterrupted weights and curve; a stored checkpoint that does not
verify (cut short) or that another recipe saved starts training over; one that cannot be uploaded leaves training going;
nothing is left in the store once the checkpoint is cleared, as NodeWorker.run clears it after recording the node.
Against a real S3 server (moto's, on loopback) and against an artifact folder."""

import os
import warnings
from dataclasses import replace

import boto3
import pytest
import torch
from torch import nn

from orchestrator.execute.worker import training_checkpoint
from orchestrator.track import Tracker
from orchestrator.track.checkpoints import STORE_ENV, StoredCheckpoint
from tests.servers import moto_s3
from workloads.checkpoint import TrainingCheckpoint
from workloads.train import train_classifier

from .test_training_checkpoint import CFG, DiesAfter, Preempted, assert_same, data, train

pytestmark = pytest.mark.fault

KEY = "0123456789abcdef" * 4
BUCKET = "lab-mlflow"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    folder = tmp_path_factory.mktemp("moto")
    credentials = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with moto_s3(folder) as endpoint:
        before = {k: os.environ.get(k) for k in [*credentials, "MLFLOW_S3_ENDPOINT_URL"]}
        os.environ.update({**credentials, "MLFLOW_S3_ENDPOINT_URL": endpoint})
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        try:
            yield client
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def stored(s3, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]


class Fails:
    def __str__(self):
        return "a store that refuses"

    def upload(self, path):
        raise ConnectionError("refused")

    def download(self, path):
        raise ConnectionError("refused")

    def delete(self):
        raise ConnectionError("refused")


def test_a_node_resumes_on_another_machine_from_the_checkpoint_in_s3_and_leaves_nothing_there(s3, tmp_path):
    root = "s3://lab-mlflow/artifacts/1/checkpoints"
    uninterrupted = train()
    first = tmp_path / "first-machine" / f"{KEY}.pt"
    with pytest.raises(Preempted):
        train(DiesAfter(first, every_steps=7, every_seconds=0, remote=StoredCheckpoint(root, KEY)))
    (checkpoint, manifest) = sorted(stored(s3, "artifacts/1/checkpoints/"))  # the second save's, the first's gone
    assert manifest == f"artifacts/1/checkpoints/{KEY}/manifest.json" and checkpoint.endswith(f"/{KEY}.pt")
    # The machine lost in the middle of its next upload: the checkpoint there, the manifest not yet pointing at it.
    s3.put_object(Bucket=BUCKET, Key=f"artifacts/1/checkpoints/{KEY}/f00d/{KEY}.pt", Body=b"half an upload")
    second = tmp_path / "second-machine" / f"{KEY}.pt"  # no local copy there
    resumed_from = TrainingCheckpoint(second, every_steps=7, every_seconds=0, remote=StoredCheckpoint(root, KEY))
    resumed = train(resumed_from)
    assert resumed_from.resumed_step == 14 and resumed_from.uploads == 3  # 21, 28, 35 of 42 steps
    assert_same(uninterrupted, resumed)
    resumed_from.clear()  # as NodeWorker.run does once the node is recorded
    assert stored(s3, "artifacts/1/") == [] and not second.exists()


def test_a_checkpoint_cut_short_in_s3_starts_over_and_a_foreign_one_is_not_resumed(s3, tmp_path):
    root = "s3://lab-mlflow/artifacts/2/checkpoints"
    uninterrupted = train()
    with pytest.raises(Preempted):
        train(
            DiesAfter(tmp_path / "a" / f"{KEY}.pt", every_steps=7, every_seconds=0, remote=StoredCheckpoint(root, KEY))
        )
    (name,) = [k for k in stored(s3, "artifacts/2/") if k.endswith(".pt")]
    whole = s3.get_object(Bucket=BUCKET, Key=name)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=name, Body=whole[: len(whole) // 2])  # an upload cut short
    checkpoint = TrainingCheckpoint(tmp_path / "b" / f"{KEY}.pt", every_steps=0, every_seconds=0)
    checkpoint.remote = StoredCheckpoint(root, KEY)
    with pytest.warns(UserWarning, match="unreadable .*manifest records"):
        assert_same(uninterrupted, train(checkpoint))
    assert checkpoint.resumed_step == 0 and stored(s3, "artifacts/2/") == []  # removed, never resumed

    # Saved by another recipe (training for other steps): not resumed, removed from the store too.
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    other = DiesAfter(tmp_path / "c" / f"{KEY}.pt", every_steps=3, every_seconds=0, remote=StoredCheckpoint(root, KEY))
    with pytest.raises(Preempted):
        train_classifier(model, *data(), replace(CFG, epochs=3), seed=5, checkpoint=other)
    assert stored(s3, "artifacts/2/")
    checkpoint = TrainingCheckpoint(tmp_path / "d" / f"{KEY}.pt", every_steps=0, every_seconds=0)
    checkpoint.remote = StoredCheckpoint(root, KEY)
    with pytest.warns(UserWarning, match="not resumed: it was saved for 21 steps, not 42"):
        assert_same(uninterrupted, train(checkpoint))
    assert checkpoint.resumed_step == 0 and stored(s3, "artifacts/2/") == []


def test_the_later_of_the_local_and_the_stored_checkpoint_is_resumed(tmp_path):
    """A machine that comes back with an older local copy resumes from the step the last machine stored, and a
    machine whose last upload failed resumes from its own later local copy."""
    root = (tmp_path / "artifacts" / "checkpoints").as_uri()
    uninterrupted = train()
    old = tmp_path / "old" / f"{KEY}.pt"

    class DiesAfterOne(TrainingCheckpoint):
        def save(self, state):
            super().save(state)
            raise Preempted

    with pytest.raises(Preempted):
        train(DiesAfterOne(old, every_steps=7, every_seconds=0))  # step 7, on this machine only
    with pytest.raises(Preempted):
        train(
            DiesAfter(
                tmp_path / "other" / f"{KEY}.pt", every_steps=7, every_seconds=0, remote=StoredCheckpoint(root, KEY)
            )
        )
    checkpoint = TrainingCheckpoint(old, every_steps=0, every_seconds=0, remote=StoredCheckpoint(root, KEY))
    assert_same(uninterrupted, train(checkpoint))
    assert checkpoint.resumed_step == 14
    checkpoint.clear()

    with pytest.raises(Preempted):
        train(DiesAfter(old, every_steps=7, every_seconds=0))  # steps 7 and 14 on this machine only
    with pytest.raises(Preempted):
        train(
            DiesAfterOne(
                tmp_path / "x" / f"{KEY}.pt", every_steps=7, every_seconds=0, remote=StoredCheckpoint(root, KEY)
            )
        )
    checkpoint = TrainingCheckpoint(old, every_steps=0, every_seconds=0, remote=StoredCheckpoint(root, KEY))
    assert_same(uninterrupted, train(checkpoint))
    assert checkpoint.resumed_step == 14  # the local step 14, not the stored step 7
    checkpoint.clear()
    assert not any((tmp_path / "artifacts").rglob("*.pt"))


def test_a_store_that_refuses_leaves_training_going(tmp_path):
    uninterrupted = train()
    checkpoint = TrainingCheckpoint(tmp_path / f"{KEY}.pt", every_steps=7, every_seconds=0, remote=Fails())
    with pytest.warns(UserWarning, match="not stored in a store that refuses"):
        assert_same(uninterrupted, train(checkpoint))
    assert checkpoint.saves == 5 and checkpoint.uploads == 0
    with pytest.warns(UserWarning, match="not removed"):
        checkpoint.clear()
    assert not checkpoint.path.exists()
    # A node that does not train (never loads nor saves) asks nothing of the store when it is cleared after recording.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrainingCheckpoint(tmp_path / "idle.pt", remote=Fails()).clear()


def test_where_the_worker_keeps_checkpoints(tmp_path, monkeypatch):
    """Local artifacts: the machine's folder alone, unless UNLEARN_SWEEP_CHECKPOINT_STORE=artifacts; S3: the bucket."""
    local = Tracker(f"sqlite:///{tmp_path / 'a.db'}", "e", str(tmp_path / "artifacts"))
    monkeypatch.delenv(STORE_ENV, raising=False)
    assert training_checkpoint(KEY, local).remote is None
    monkeypatch.setenv(STORE_ENV, "artifacts")
    remote = training_checkpoint(KEY, local).remote
    experiment = local.store.client.get_experiment(local.store.experiment_id).artifact_location
    assert str(remote) == f"{experiment}/checkpoints/{KEY}"
    in_s3 = Tracker(f"sqlite:///{tmp_path / 'b.db'}", "e", "s3://lab-mlflow/artifacts")
    monkeypatch.setenv(STORE_ENV, "auto")
    assert str(training_checkpoint(KEY, in_s3).remote) == f"s3://lab-mlflow/artifacts/checkpoints/{KEY}"
    monkeypatch.setenv(STORE_ENV, "local")
    assert training_checkpoint(KEY, in_s3).remote is None
    monkeypatch.setenv(STORE_ENV, "bucket")
    with pytest.raises(ValueError, match="one of auto, artifacts, local"):
        training_checkpoint(KEY, in_s3)
