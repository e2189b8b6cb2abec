"""The benchmark scripts run end to end at tiny sizes (`--smoke`), so the commands BENCHMARKS.md gives, the GPU one
included, are ready on the machine that can measure them. Their figures mean nothing at these sizes."""

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
