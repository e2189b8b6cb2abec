"""The benchmark scripts run end to end at tiny sizes (`--smoke`), so the commands BENCHMARKS.md gives, the GPU one
included, are ready on the machine that can measure them. Their figures mean nothing at these sizes."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "script, tables",
    [
        ("trainer.py", ["| model | path |"]),
        ("distributional.py", ["| score | vectorised (s) | per-example loop (s) |", "| forget quality F |"]),
        (
            "gpu.py",
            [
                "## 1. ResNet-18 CIFAR training throughput",
                "## 2. Memorization ensemble",
                "## 3. Four quarter-GPU Ray actors",
                "## 4. Projected wall time of the study sweep",
                "## 5. The trainer against the reference loop",
                "| model | path |",  # section 5 ran trainer.py to its table
            ],
        ),
    ],
)
def test_benchmark_runs_every_code_path_in_smoke_mode(script, tables):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--smoke"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for table in tables:
        assert table in done.stdout


def test_tracking_capacity_counts_store_calls_per_node_in_smoke_mode(tmp_path):
    """The tracking-capacity benchmark starts its own stack (PostgreSQL where its binaries are, else sqlite; mlflow
    server; moto S3), records nodes from 1 then 2 worker processes, dealt to two live sweeps as in a lab, and prints
    one row per N. The counts are exact: a claim searches once (the other sweep is remembered live) and a record
    never reads its run back (the claim's artifact URI travels with the task)."""
    from tests.servers import postgres_available

    out = tmp_path / "capacity.json"
    backend = "postgres" if postgres_available() else "sqlite"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "tracking_capacity.py"), "--smoke", "--backend", backend]
        + ["--sweeps", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert [p["workers"] for p in figures["points"]] == [1, 2]
    for p in figures["points"]:
        assert p["nodes"] == 2 * p["workers"] and p["nodes_per_s"] > 0
        assert p["rest_calls_per_node"] > 0 and p["s3_calls_per_node"] > 0
        assert p["calls_per_node"]["claim"]["POST runs/create"] == 1  # one run per claim
        assert p["calls_per_node"]["record"]["S3 PutObject"] >= 2  # result.json, the manifest
        assert p["calls_per_node"]["claim"]["POST runs/search"] == 1  # the key's runs; live sweeps remembered
        assert "GET runs/get" not in p["calls_per_node"]["record"]
        assert p["server_cpu_ms_per_call"] > 0
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2, done.stdout
    assert "| 10 min |" in done.stdout
