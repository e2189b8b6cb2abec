"""The HTML report and MLflow's UI as a researcher sees them: opened in headless Chromium (Debian's `chromium`,
installed by the fixture below when missing), screenshots checked for drawn content and the DOM for the methods and
runs. The UI is a real `mlflow server` on the sweeps' sqlite store, in its own session, ended with its process group.

With UNLEARN_SWEEP_SCREENSHOTS=<folder> the screenshots are also saved there, palette-reduced (docs/ holds them)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

from orchestrator.track.ui import ui_path
from tests.conftest import REPORT_SETTINGS
from tests.servers import free_port, server

pytestmark = pytest.mark.browser

METHODS = [s["name"] for s in REPORT_SETTINGS]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium, installed with apt-get when missing (CI runs as root)."""
    if shutil.which("chromium") is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stderr[-2000:]}"
    return shutil.which("chromium")


def browse(chromium: str, url: str, folder: Path, name: str, size=(1400, 900), budget_ms=15000) -> tuple[Path, str]:
    """A screenshot of the page and its DOM after `budget_ms` of virtual time (the JS UI renders), from a fresh
    profile."""
    shot = folder / f"{name}.png"
    done = subprocess.run(
        [
            chromium,
            *FLAGS,
            f"--user-data-dir={folder / f'profile-{name}'}",
            f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={shot}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    return shot, done.stdout


def drawn(png: Path, top: float, bottom: float) -> bool:
    """Whether a horizontal band of the screenshot (fractions of its height) holds drawn content: many colours and
    varied pixels, not a blank page."""
    image = imread(png)[..., :3]
    band = image[int(top * image.shape[0]) : int(bottom * image.shape[0])]
    colours = len(np.unique((band * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    return band.std() > 0.05 and colours > 50


def keep(png: Path, name: str) -> None:
    folder = os.environ.get("UNLEARN_SWEEP_SCREENSHOTS")
    if folder:
        from PIL import Image

        Image.open(png).convert("RGB").quantize(colors=128).save(Path(folder) / f"{name}.png", optimize=True)


def test_the_html_report_shows_its_ranked_table_and_every_figure(chromium, reported_sweeps, tmp_path):
    report = reported_sweeps["folder"] / "a" / "report" / "report.html"
    shot, dom = browse(chromium, report.as_uri(), tmp_path, "report", size=(1400, 1400), budget_ms=3000)
    assert 'id="ranked"' in dom and all(m in dom for m in METHODS) and "retrain (control)" in dom
    # The controls are references above the ranking, not ranked among the settings.
    references, ranked = (dom.split(f'id="{name}"')[1].split("</table>")[0] for name in ("references", "ranked"))
    assert "retrain (control)" in references and "original" in references
    assert "retrain (control)" not in ranked and all(m in ranked for m in METHODS)
    assert "looks clean" in dom or "damaged" in dom or "forgets too little" in dom  # the readings' words
    assert "test %" in dom and "recovery k=10 (points)" in dom
    assert dom.count("data:image/svg+xml;base64,") == 5 and "Spearman" in dom
    assert drawn(shot, 0.05, 0.45) and drawn(shot, 0.6, 0.95)  # the tables, then the first figure
    keep(shot, "report")


def test_the_reports_tables_sort_on_a_click(chromium, reported_sweeps, tmp_path):
    """A copy of the report with a script that clicks the `test %` header of the ranked table and writes the model
    order it then shows into the page, read back from the DOM."""
    report = (reported_sweeps["folder"] / "a" / "report" / "report.html").read_text()
    click = (
        "<script>const t=document.querySelector('#ranked');"
        "const th=[...t.tHead.rows[0].cells].find(c=>c.textContent==='test %');"
        "th.click();document.body.dataset.order=[...t.tBodies[0].rows].map(r=>r.cells[4].dataset.v).join(',');</script>"
    )
    page = tmp_path / "clicked.html"
    page.write_text(report.replace("</body>", click + "</body>"))
    _, dom = browse(chromium, page.as_uri(), tmp_path, "clicked", budget_ms=2000)
    order = [float(v) for v in dom.split('data-order="')[1].split('"')[0].split(",")]
    assert len(order) == len(METHODS) and order == sorted(order)  # the settings by test accuracy, ascending


@pytest.fixture(scope="module")
def mlflow_ui(reported_sweeps, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui")
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        reported_sweeps["uri"],
    ]
    with server(command, f"http://127.0.0.1:{port}/health", folder / "mlflow-ui.log"):
        yield f"http://127.0.0.1:{port}"


def test_mlflow_ui_opens_the_experiment_on_its_runs_table_of_comparable_results(
    chromium, reported_sweeps, mlflow_ui, tmp_path
):
    experiment = MlflowClient(reported_sweeps["uri"]).get_experiment_by_name("unlearn-sweep")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    shot, dom = browse(
        chromium, f"{mlflow_ui}/{ui_path(experiment.experiment_id)}", tmp_path, "mlflow-runs", size=(1400, 900)
    )
    assert "Model training" in dom and "Runs" in dom
    assert "Detect Issues" not in dom and "Token Usage" not in dom  # not the GenAI overview
    for method in METHODS:
        assert f"result {method}" in dom  # the result runs, one per model and seed
    assert "recovery_k10" in dom and "relearned_k10_heldout_forget_acc" in dom  # the strongest attack's, on screen
    assert drawn(shot, 0.2, 0.8)
    keep(shot, "mlflow-runs")


def test_mlflow_ui_shows_a_later_sweep_with_the_nodes_it_found_cached_among_its_children(
    chromium, reported_sweeps, mlflow_ui, tmp_path
):
    client = MlflowClient(reported_sweeps["uri"])
    experiment = client.get_experiment_by_name("unlearn-sweep")
    b = client.search_runs(
        [experiment.experiment_id], f"tags.sweep_id = '{reported_sweeps['b']['sweep_id']}' and tags.node_kind = 'sweep'"
    )[0]
    url = f"{mlflow_ui}/#/experiments/{experiment.experiment_id}/runs/{b.info.run_id}?workflowType=machine_learning"
    shot, dom = browse(chromium, url, tmp_path, "mlflow-sweep")
    children = dom[dom.index("Child runs") :]
    assert (
        "(cached)" in children and "lmc weight_distortion" in children
    )  # linked beside the nodes it ran (newest first)
    assert "mnist1d" in dom and "unlearn-sweep" in dom  # the dataset input and the source
    assert drawn(shot, 0.1, 0.6)
