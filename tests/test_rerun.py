"""Running a sweep that already finished: nothing computed, nothing recorded, no torch or MLflow imported; and every
way the store can stop holding that sweep's results (a demoted, deleted or damaged node, a newer result of a key)
sends the run back to planning in full, with the sqlite reading and MLflow's own lookup agreeing on each."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.spec.fingerprint import fingerprint
from orchestrator.track.artifacts import Artifacts
from orchestrator.track.finished import NODES, LocalRecord, through_mlflow
from tests.conftest import REPO, tiny_quickstart

pytestmark = pytest.mark.e2e

ONE_METHOD = [{"name": "finetune", "hparams": {"lr": 3.0e-3, "weight_decay": 0.0, "epochs": 0.5}}]
HEAVY = ("torch", "mlflow", "scipy", "matplotlib", "ray")
# The CLI in a process of its own, reporting which heavy packages it imported.
PROBE = (
    "import sys; from orchestrator.cli import main; code = main(sys.argv[1:]); "
    f"print('imported:', sorted(set({HEAVY!r}) & set(sys.modules))); sys.exit(code)"
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rerun")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    sweep = tiny_quickstart(
        folder / "sweep.yaml", methods=ONE_METHOD, tracking__artifact_location=str(folder / "artifacts")
    )
    lookups, find = Counter(), Artifacts.find

    def counted_find(self, key):  # every look-up of a key in the store, for the test of how often a sweep looks
        lookups[key] += 1
        return find(self, key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Artifacts, "find", counted_find)
        assert main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(folder / "summary.json")]) == 0
    summary = json.loads((folder / "summary.json").read_text())
    return {"folder": folder, "uri": uri, "sweep": sweep, "summary": summary, "lookups": lookups}


def test_a_sweep_on_an_empty_store_looks_each_node_up_once(finished):
    """The search before a claim is made once per node: a node the sweep's first look missed (its key known from the
    start) is claimed without a second look, and the claim's own search would catch a result recorded since."""
    assert finished["lookups"] and set(finished["lookups"].values()) == {1}, finished["lookups"].most_common(3)


def cli(finished, *args: str, command: str = "run") -> subprocess.CompletedProcess:
    """`unlearn-sweep run <the sweep> --tracking-uri <its store> ARGS` (or another command with those arguments) in
    a process of its own, which prints the heavy packages it imported."""
    target = [str(finished["sweep"])] if command in ("run", "plan") else []
    return subprocess.run(
        [sys.executable, "-c", PROBE, command, *target, "--tracking-uri", finished["uri"], *args],
        cwd=finished["folder"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def the_store(uri: str) -> dict:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unlearn-sweep").experiment_id
    return {
        r.info.run_id: (r.info.status, r.info.lifecycle_stage)
        for r in client.search_runs([experiment], max_results=5000)
    }


def test_a_finished_sweep_run_again_computes_records_and_imports_nothing(finished, tmp_path):
    before, report = the_store(finished["uri"]), finished["folder"] / "report"
    drawn = {p.name: p.stat().st_mtime_ns for p in report.iterdir()}
    done = cli(finished, "--summary", str(tmp_path / "again.json"), "--report-dir", str(report))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported: []" in done.stdout  # neither torch, MLflow, SciPy, matplotlib nor Ray
    assert "nothing to compute or record" in " ".join(done.stderr.split()) and "already there" in done.stderr
    assert "accuracy (%) on held-out forget examples" in done.stdout and "finetune" in done.stdout  # the results table
    again, first = json.loads((tmp_path / "again.json").read_text()), finished["summary"]
    total = first["nodes"]["total"]
    rerun = again.pop("rerun")  # that sweep's summary, unchanged, and this run noted beside it
    assert again == first
    assert rerun["nodes"] == {"total": total, "executed": 0, "cached": total, "failed": 0}
    assert rerun["sweep_run_id"] and rerun["wall_seconds"] < first["wall_seconds"]
    assert the_store(finished["uri"]) == before  # no parent, link or result run added, none changed
    assert {p.name: p.stat().st_mtime_ns for p in report.iterdir()} == drawn  # the report kept, not drawn again


@pytest.mark.parametrize(
    "command, args, allowed",
    [
        # A sqlite store on this machine is read without MLflow (orchestrator/track/sqlite_record.py).
        ("status", [], set()),
        ("cache", ["ls"], set()),
        ("compare", ["SUMMARY", "SUMMARY"], set()),
        ("cache", ["gc"], {"mlflow", "scipy"}),  # MLflow's own imports include SciPy
        # Drawn from the summary alone (a store that does not exist), so the sweep's own run keeps its report.
        ("report", ["SUMMARY", "--out", "REPORT", "--tracking-uri", "NOSTORE"], {"mlflow", "scipy", "matplotlib"}),
    ],
)
def test_the_commands_that_read_the_record_import_no_torch(finished, tmp_path, command, args, allowed):
    """They read runs, summaries and artifact listings; torch is for nodes (and `cache verify`'s checkpoint loads)."""
    paths = {
        "SUMMARY": str(finished["folder"] / "summary.json"),
        "REPORT": str(tmp_path / "report"),
        "NOSTORE": f"sqlite:///{tmp_path / 'none.db'}",
    }
    done = cli(finished, *[paths.get(arg, arg) for arg in args], command=command)
    assert done.returncode == 0, done.stderr[-3000:]
    imported = eval(done.stdout.split("imported:")[-1])  # noqa: S307 - our own child's repr of a list of names
    assert set(imported) <= allowed, imported


def test_version_imports_nothing_heavy():
    probe = PROBE.replace(
        "code = main(sys.argv[1:]); ", "code = 0\ntry: main(['--version'])\nexcept SystemExit: pass\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("unlearn-sweep "), done.stderr
    assert "imported: []" in done.stdout


def test_its_report_is_copied_from_the_sweeps_run_or_drawn_for_another_floor(finished, tmp_path):
    done = cli(finished, "--summary", str(tmp_path / "summary.json"))
    assert done.returncode == 0 and "copied from the sweep's run" in done.stderr, done.stderr[-3000:]
    first = finished["folder"] / "report"
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(p.name for p in first.iterdir())
    assert (tmp_path / "report" / "report.html").read_bytes() == (first / "report.html").read_bytes()

    done = cli(finished, "--summary", str(tmp_path / "summary.json"), "--test-floor", "0.2")
    assert done.returncode == 0 and "drawn again" in done.stderr, done.stderr[-3000:]
    assert json.loads((tmp_path / "report" / "drawn_from.json").read_text())["test_floor"] == 0.2


def parent_run(finished):
    client = MlflowClient(finished["uri"])
    return client.search_runs(
        [client.get_experiment_by_name("unlearn-sweep").experiment_id],
        f"tags.sweep_id = '{finished['summary']['sweep_id']}' and tags.node_kind = 'sweep'",
    )[0]


def kept(folder: Path) -> dict:
    """Every file under `folder` and its bytes: what a sweep's run holds."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_reruns_summary_never_replaces_the_sweeps_record(finished, tmp_path):
    """`report` of a re-run's summary.json logs nothing over the sweep's run (it holds that report already); a
    summary that is not the one the sweep recorded (a re-run's from before, with its node counts and wall time) is
    drawn locally and never logged there."""
    parent = parent_run(finished)
    held = Path(parent.info.artifact_uri.removeprefix("file://"))
    before, runs = kept(held), the_store(finished["uri"])
    assert "summary.json" in before and "report/report.html" in before
    assert cli(finished, "--summary", str(tmp_path / "again.json"), "--no-report").returncode == 0

    done = cli(finished, str(tmp_path / "again.json"), "--out", str(tmp_path / "a"), command="report")
    said = " ".join(done.stderr.split())
    assert done.returncode == 0 and f"run {parent.info.run_id} already holds this report" in said, said[-3000:]
    executed = finished["summary"]["nodes"]["executed"]
    assert f"({executed} executed, 0 cached" in (tmp_path / "a" / "report.html").read_text()  # the sweep's own counts

    stale = {**finished["summary"], "nodes": {**finished["summary"]["nodes"], "executed": 0}, "wall_seconds": 0.05}
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    done = cli(finished, str(tmp_path / "stale.json"), "--out", str(tmp_path / "b"), command="report")
    said = " ".join(done.stderr.split())
    assert done.returncode == 0 and f"not logged on run {parent.info.run_id}" in said, said[-3000:]
    assert (tmp_path / "b" / "report.html").is_file()
    assert kept(held) == before and the_store(finished["uri"]) == runs  # the sweep's record as it was


def test_compare_says_when_configs_are_the_same_and_warns_on_one_sweep_twice(finished, tmp_path):
    summary = str(finished["folder"] / "summary.json")
    done = cli(finished, summary, summary, command="compare")
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 0, said[-3000:]
    assert f"both sides are sweep {finished['summary']['sweep_id']}" in said
    assert "config: the same in both sweeps" in said and "what differs" not in said


def test_the_sqlite_reading_and_mlflows_client_read_the_same_record(finished):
    from orchestrator.track.sqlite_record import SqliteRecord
    from orchestrator.track.store import Store
    from orchestrator.track.stored_sweeps import MlflowRecord

    direct = SqliteRecord(Path(finished["uri"].removeprefix("sqlite:///")), "unlearn-sweep")
    client = MlflowRecord(Store.existing(finished["uri"], "unlearn-sweep"))
    assert direct.sweeps() == client.sweeps() and direct.sweeps()
    ref = finished["summary"]["sweep_id"]
    assert direct.sweep(ref) == client.sweep(ref)
    assert direct.summary(direct.sweep(ref)) == client.summary(client.sweep(ref)) == finished["summary"]
    assert direct.usage() == client.usage() and direct.usage()


def readings(finished) -> tuple:
    """(what the sqlite reading finds, what MLflow's lookups find): the finished sweep's parent run, or None."""
    digest, path = fingerprint(finished["sweep"], []).digest, Path(finished["uri"].removeprefix("sqlite:///"))
    read, asked = (
        LocalRecord(path, "unlearn-sweep").finished(digest),
        through_mlflow(finished["uri"], "unlearn-sweep", digest),
    )
    return tuple(None if found is None else found.run_id for found in (read, asked))


@contextmanager
def demoted(client, run_id, folder):
    client.set_terminated(run_id, "FAILED")  # what `cache verify` does to a run that fails it
    yield
    client.set_terminated(run_id, "FINISHED")


@contextmanager
def deleted(client, run_id, folder):
    client.delete_run(run_id)
    yield
    client.restore_run(run_id)


@contextmanager
def checkpoint_missing(client, run_id, folder):
    (folder / "model.pt").rename(folder / "model.pt.away")
    yield
    (folder / "model.pt.away").rename(folder / "model.pt")


@contextmanager
def checkpoint_resized(client, run_id, folder):
    data = (folder / "model.pt").read_bytes()
    (folder / "model.pt").write_bytes(data + b"\0")
    yield
    (folder / "model.pt").write_bytes(data)


@contextmanager
def result_tampered(client, run_id, folder):
    data = (folder / "result.json").read_bytes()
    (folder / "result.json").write_bytes(data.replace(b"0", b"1", 1))  # same size, other bytes
    yield
    (folder / "result.json").write_bytes(data)


@contextmanager
def newer_result_of_its_key(client, run_id, folder):
    held = client.get_run(run_id)
    newer = client.create_run(held.info.experiment_id, tags={"node_key": held.data.tags["node_key"]}).info.run_id
    client.log_artifacts(newer, str(folder))
    client.set_terminated(newer, "FINISHED")
    yield
    client.delete_run(newer)


@contextmanager
def parent_deleted(client, run_id, folder):
    parent = client.get_run(run_id).data.tags["mlflow.parentRunId"]
    client.delete_run(parent)
    yield
    client.restore_run(parent)


@pytest.mark.parametrize(
    "change",
    [
        demoted,
        deleted,
        checkpoint_missing,
        checkpoint_resized,
        result_tampered,
        newer_result_of_its_key,
        parent_deleted,
    ],
    ids=lambda change: change.__name__,
)
def test_the_sqlite_reading_and_mlflows_lookup_agree_on_what_still_stands(finished, change):
    client = MlflowClient(finished["uri"])
    parent = client.search_runs(
        [client.get_experiment_by_name("unlearn-sweep").experiment_id],
        f"tags.sweep_id = '{finished['summary']['sweep_id']}' and tags.node_kind = 'sweep'",
    )[0]
    assert readings(finished) == (parent.info.run_id, parent.info.run_id)
    nodes = json.loads((Path(parent.info.artifact_uri.removeprefix("file://")) / NODES).read_text())
    original = next(run for run in nodes.values() if client.get_run(run).data.tags["node_kind"] == "train_original")
    with change(client, original, Path(client.get_run(original).info.artifact_uri.removeprefix("file://"))):
        assert readings(finished) == (None, None)
    assert readings(finished) == (parent.info.run_id, parent.info.run_id)


def test_a_node_that_failed_verification_is_recomputed_then_the_sweep_stands_again(finished, tmp_path):
    client = MlflowClient(finished["uri"])
    unlearn = finished["summary"]["results"][0]["run_id"]
    checkpoint = Path(client.get_run(unlearn).info.artifact_uri.removeprefix("file://")) / "model.pt"
    data = bytearray(checkpoint.read_bytes())
    data[-1] ^= 1
    checkpoint.write_bytes(bytes(data))
    assert main(["cache", "verify", "--tracking-uri", finished["uri"]]) == 1  # found, and its run demoted

    assert (
        main(
            [
                "run",
                str(finished["sweep"]),
                "--tracking-uri",
                finished["uri"],
                "--summary",
                str(tmp_path / "two.json"),
                "--no-report",
            ]
        )
        == 0
    )
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["nodes"]["executed"] == 1 and two["sweep_id"] != finished["summary"]["sweep_id"]  # planned in full
    recomputed, first = (dict(s["results"][0]["unlearned"]) for s in (two, finished["summary"]))
    assert recomputed.pop("run_id") != first.pop("run_id") and recomputed == first  # the same result, in a new run

    done = cli(finished, "--summary", str(tmp_path / "three.json"), "--no-report")
    assert done.returncode == 0 and "imported: []" in done.stdout, done.stderr[-3000:]
    assert json.loads((tmp_path / "three.json").read_text())["sweep_id"] == two["sweep_id"]


# -- the fingerprint --------------------------------------------------------------------------------------------------
def test_the_fingerprint_follows_every_input_of_the_keys_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = tiny_quickstart(tmp_path / "a.yaml")
    same = fingerprint(sweep, []).digest
    assert fingerprint(sweep, []).digest == same
    edited = tiny_quickstart(tmp_path / "b.yaml", relearn__epochs=2)
    assert (
        fingerprint(edited, []).digest == fingerprint(sweep, ["relearn.epochs=2"]).digest != same
    )  # a file or an override
    (tmp_path / "elsewhere").mkdir()
    assert (
        fingerprint(shutil.copy(sweep, tmp_path / "elsewhere" / "z.yaml"), []).digest == same
    )  # where the file is: not an input
    profiled = tiny_quickstart(tmp_path / "p.yaml", profiles={"longer": {"relearn": {"epochs": 3}}})
    assert (
        fingerprint(profiled, ["longer"]).digest == fingerprint(profiled, ["relearn.epochs=3"]).digest
    )  # the same sweep
    assert fingerprint(profiled, ["longer"]).digest != fingerprint(profiled, []).digest

    scores = tmp_path / "scores.npy"
    scores.write_bytes(b"first")
    named = fingerprint(sweep, [f"memorization.scores_file={scores.name}"]).digest
    scores.write_bytes(b"other")  # a file the sweep names: its bytes, not its name
    assert fingerprint(sweep, [f"memorization.scores_file={scores.name}"]).digest != named

    monkeypatch.setenv("SWEEP_LR", "0.01")
    from_env = tiny_quickstart(tmp_path / "c.yaml", relearn__lr="${oc.env:SWEEP_LR}")
    by_env = fingerprint(from_env, []).digest
    monkeypatch.setenv("SWEEP_LR", "0.02")
    assert fingerprint(from_env, []).digest != by_env  # interpolations resolved

    assert fingerprint(tmp_path / "missing.yaml", []) is None  # the full path then names what is wrong
