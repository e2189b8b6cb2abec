"""Progress where output is a log: a sweep whose stdout is a pipe writes one line per finished node while it runs, and
the sweep's MLflow run carries the same counts as it goes."""

import re
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from tests.conftest import REPO, tiny_quickstart

pytestmark = pytest.mark.e2e

LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[(\d+)/(\d+)\] (executed|cached) (.+?) (in [\d.]+ s|\(run \w+\)) · "
    r"elapsed \d+:\d\d:\d\d · remaining (~\d+:\d\d:\d\d|unknown)$"
)


def test_a_piped_sweep_logs_each_node_as_it_finishes_and_its_run_counts_them(tmp_path, capsys):
    # Small: one method, one attack, a random forget set (no memorization models).
    sweep = tiny_quickstart(
        tmp_path / "q.yaml",
        methods=[{"name": "neggrad_plus", "hparams": {"lr": 1e-2, "epochs": 0.5}}],
        forget={"target_class": None, "fraction": 0.1, "criterion": "random", "seed": 0, "attack_pool_fraction": 0.2},
        relearn__k=[0],
        tracking__artifact_location=str(tmp_path / "artifacts"),
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [
        sys.executable,
        "-m",
        "orchestrator",
        "run",
        str(sweep),
        "--tracking-uri",
        uri,
        "--summary",
        str(tmp_path / "s.json"),
        "--no-report",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
    )
    lines, running_at_first = [], None
    for line in process.stdout:  # read as written: a bar would print nothing here until the end
        if LINE.match(line.rstrip()) and running_at_first is None:
            running_at_first = process.poll() is None
        lines.append(line.rstrip())
    assert process.wait(timeout=600) == 0
    nodes = [LINE.match(line) for line in lines if LINE.match(line)]
    total = int(nodes[0].group(3))
    assert running_at_first  # the first node's line arrived while the sweep was still running
    assert [int(m.group(2)) for m in nodes] == list(range(1, total + 1))  # one line per node, counted up
    assert [m.group(1) for m in nodes] == sorted(m.group(1) for m in nodes)  # timestamped as they finish
    assert all(m.group(4) == "executed" for m in nodes) and nodes[-1].group(7) == "~0:00:00"
    assert lines.index(nodes[-1].group(0)) < next(
        i for i, line in enumerate(lines) if "accuracy (%)" in line
    )  # before the table

    client = MlflowClient(uri)
    parent = client.search_runs(
        [client.get_experiment_by_name("unlearn-sweep").experiment_id], "tags.node_kind = 'sweep'"
    )[0]
    done = client.get_metric_history(parent.info.run_id, "nodes_done")
    assert len(done) > 1 and done[-1].value == total and sorted(m.step for m in done) == [m.step for m in done]
    assert parent.data.tags["progress"].startswith(f"{total}/{total} ") and parent.data.tags["progress.total"] == str(
        total
    )

    assert main(command[3:] + ["--record-again"]) == 0  # recorded anew, stdout captured: one line says all cached
    assert f"[{total}/{total}] found in the store: {total} cached nodes" in capsys.readouterr().out
