"""Storage that hands back wrong bytes or refuses them. Checkpoints in the store corrupted (a flipped byte),
truncated, or replaced by a pickle that runs code (its manifest rewritten to match, as an attacker with write access
would): `cache verify` reports each and demotes it, none runs code, and the next sweep recomputes exactly those to the
same results; a corrupt checkpoint a sweep finds on loading is recomputed there. A write that fails half-way (a full
disk; an S3 endpoint refusing the upload) leaves no result: the node fails, nothing else is lost, the rerun computes
only what is missing."""

import errno
import hashlib
import json
import os
import pickle
from pathlib import Path
from urllib.parse import urlparse

import pytest
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository
from mlflow.tracking import MlflowClient

from orchestrator.cli import main

from .helpers import assert_same_results, finished_once, node_runs, small_sweep

pytestmark = pytest.mark.fault


def run(tmp_path, sweep, uri, name, *overrides):
    code = main(
        [
            "run",
            str(sweep),
            *overrides,
            "--tracking-uri",
            uri,
            "--summary",
            str(tmp_path / f"{name}.json"),
            "--no-report",
        ]
    )
    return code, json.loads((tmp_path / f"{name}.json").read_text())


def checkpoint_of(uri, run_id) -> Path:
    return Path(urlparse(MlflowClient(uri).get_run(run_id).info.artifact_uri).path) / "model.pt"


class Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_bad_checkpoints_are_reported_never_run_code_and_are_recomputed_to_the_same_results(tmp_path, capsys):
    sweep, uri = small_sweep(tmp_path), f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, first = run(tmp_path, sweep, uri, "first")
    assert code == 0
    unlearn = next(r.info.run_id for r in node_runs(uri) if r.data.tags["node_kind"] == "unlearn")
    original, retrain = first["original"]["run_id"], first["retrain"]["run_id"]

    flipped = checkpoint_of(uri, original)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    truncated = checkpoint_of(uri, retrain)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    evil = checkpoint_of(uri, unlearn)
    evil.write_bytes(pickle.dumps({"weight": Exploit(tmp_path / "pwned")}))
    manifest = evil.parent / "manifest.json"
    entries = json.loads(manifest.read_text())
    entries["model.pt"] = {"sha256": hashlib.sha256(evil.read_bytes()).hexdigest(), "size": evil.stat().st_size}
    manifest.write_text(json.dumps(entries))

    capsys.readouterr()
    assert main(["cache", "verify", "--tracking-uri", uri]) == 1
    report = " ".join(capsys.readouterr().out.split())  # as one line, however the console wrapped it
    assert f"run {original}): model.pt: sha256 differs" in report
    assert f"run {retrain}): model.pt: " in report and "recorded" in report
    assert f"run {unlearn}): model.pt: refused by torch.load(weights_only=True)" in report
    assert "3 failed" in report and not (tmp_path / "pwned").exists()

    code, second = run(tmp_path, sweep, uri, "second")  # the same sweep: exactly the three are computed again
    assert code == 0 and second["nodes"]["executed"] == 3 and second["nodes"]["cached"] == 14
    assert_same_results(first, second)
    assert main(["cache", "verify", "--tracking-uri", uri]) == 0

    # Corrupt again and let a sweep find it: a new method setting needs the original's checkpoint.
    original = second["original"]["run_id"]
    flipped = checkpoint_of(uri, original)
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    code, third = run(tmp_path, sweep, uri, "third", "methods.0.hparams.lr=0.01")
    assert code == 0 and third["original"]["run_id"] != original
    assert_same_results(first["original"], third["original"])
    demoted = MlflowClient(uri).get_run(original)
    assert demoted.info.status == "FAILED" and "sha256" in demoted.data.tags["corrupt_artifact"]
    assert not (tmp_path / "pwned").exists()


def test_a_full_disk_while_saving_a_checkpoint_leaves_no_result_and_the_rerun_computes_only_that(tmp_path, monkeypatch):
    """Simulated: a real ENOSPC of the artifact folder needs a small filesystem mounted for the test (root), so the
    local artifact store's copy raises the OSError a full disk gives, for the first checkpoint only."""
    sweep, uri = small_sweep(tmp_path), f"sqlite:///{tmp_path / 'mlflow.db'}"
    log_artifact, failed = LocalArtifactRepository.log_artifact, []

    def disk_full_once(self, local_file, artifact_path=None):
        if Path(local_file).name == "model.pt" and not failed:
            failed.append(local_file)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), local_file)
        return log_artifact(self, local_file, artifact_path)

    monkeypatch.setattr(LocalArtifactRepository, "log_artifact", disk_full_once)
    code, first = run(tmp_path, sweep, uri, "first")
    assert failed and code == 1
    assert 0 < first["nodes"]["failed"] < first["nodes"]["total"]  # the node and what needs it; the rest finished
    broken = [r for r in node_runs(uri) if r.info.status == "FAILED"]
    assert len(broken) == 1 and "No space left on device" in broken[0].data.tags["error"]
    assert main(["cache", "verify", "--tracking-uri", uri]) == 0  # the half-written run is no result

    monkeypatch.setattr(LocalArtifactRepository, "log_artifact", log_artifact)
    code, second = run(tmp_path, sweep, uri, "second")
    assert code == 0 and second["nodes"]["executed"] == first["nodes"]["failed"]
    assert second["nodes"]["cached"] == first["nodes"]["executed"]
    counts = finished_once(uri)
    assert len(counts) == second["nodes"]["total"] and set(counts.values()) == {1}


def test_an_s3_upload_that_fails_leaves_no_result_and_the_rerun_computes_only_that(tmp_path, monkeypatch):
    import boto3

    from tests.servers import moto_s3

    from .s3_proxy import S3Proxy

    with moto_s3(tmp_path) as endpoint, S3Proxy(endpoint) as proxy:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "MLFLOW_S3_ENDPOINT_URL": proxy.url,
        }.items():
            monkeypatch.setenv(name, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lab")
        sweep, uri = (
            small_sweep(tmp_path, tracking__artifact_location="s3://lab/artifacts"),
            f"sqlite:///{tmp_path / 'mlflow.db'}",
        )
        proxy.refusing.set()  # the first checkpoint upload fails, every retry of it too
        code, first = run(tmp_path, sweep, uri, "first")
        assert proxy.refusals >= 1 and code == 1
        assert 0 < first["nodes"]["failed"] < first["nodes"]["total"]
        (broken,) = [r for r in node_runs(uri) if r.info.status == "FAILED"]
        assert "InternalError" in broken.data.tags["error"]
        assert main(["cache", "verify", "--tracking-uri", uri]) == 0  # what finished verifies from the bucket

        proxy.refusing.clear()
        code, second = run(tmp_path, sweep, uri, "second")
        assert code == 0 and second["nodes"]["executed"] == first["nodes"]["failed"]
        assert second["nodes"]["cached"] == first["nodes"]["executed"]
        counts = finished_once(uri)
        assert len(counts) == second["nodes"]["total"] and set(counts.values()) == {1}
