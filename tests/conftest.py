import json
import os
import tempfile
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.postgres import backend, lab_stack, postgres_databases, s3_endpoint, served  # noqa: F401 - fixtures
from workloads.runtime import configure_torch

configure_torch(min(2, os.cpu_count() or 1))  # as the CLI does: before any torch op, denormals flushed
# The per-machine caches (dataset labels, step costs) of this test session only, inherited by the CLI subprocesses.
os.environ["UNLEARN_SWEEP_CACHE"] = tempfile.mkdtemp(prefix="unlearn-sweep-test-cache-")
REPO = Path(__file__).resolve().parent.parent
TIERS = ("e2e", "fault", "browser", "deploy", "slow")


def pytest_collection_modifyitems(items):
    """A test in none of the slower tiers is a unit test: `pytest -m unit` runs them while editing."""
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(pytest.mark.unit)


QUICKSTART = REPO / "configs" / "sweeps" / "quickstart.yaml"


TINY_METHODS = [
    {"name": "finetune", "hparams": {"lr": 3.0e-3, "weight_decay": 0.0}},
    {"name": "neggrad_plus", "hparams": {"lr": 1.0e-2}},
    {"name": "alternating_scrub", "hparams": {"lr": 1.0e-2, "kl_reduction": "batchmean"}},
    {"name": "weight_distortion", "hparams": {"lr": 1.0e-3, "sigma": 0.15}},
    {"name": "weight_dist_reg", "hparams": {"lr": 1.0e-3, "alpha": 1000.0}},
]


def tiny_quickstart(path: Path, **changes) -> Path:
    """The real quickstart file, shrunk to seconds: its data, model kind, forget set and relearning attack, with tiny
    data and models, one seed and five fixed methods (so the tests do not follow the quickstart's tuning)."""
    cfg = OmegaConf.load(QUICKSTART)
    cfg.seeds = [43]
    cfg.methods = TINY_METHODS
    cfg.relearn.k = [0, 10]
    cfg.dataset.args.num_samples = 1000
    cfg.model.args = {"channels": [8, 16], "hidden": 32}
    cfg.train.epochs = 4
    cfg.memorization.num_models = 4
    cfg.memorization.train.epochs = 2
    for method in cfg.methods:
        method.hparams.epochs = 0.5
    cfg.relearn.epochs = 1
    cfg.relearn.eval_every = 2
    cfg.lmc.stride = 0.25
    cfg.forget.fraction = 0.1
    for dotted, value in changes.items():
        OmegaConf.update(cfg, dotted.replace("__", "."), value, merge=False)
    path.write_text(OmegaConf.to_yaml(cfg))
    return path


TASK_SPACE = REPO / "configs" / "sweeps" / "rem_task_space_cpu.yaml"


def tiny_task_space(path: Path, **changes) -> Path:
    """The CPU task-space sweep shrunk to seconds: one seed, 600 signals, 40 corrupted per corruption at two discovery
    rates, REM and NPO for a few steps, one short relearning attack."""
    cfg = OmegaConf.load(TASK_SPACE)
    cfg.seeds = [43]
    cfg.dataset.args.num_samples = 600
    cfg.model.args.channels, cfg.model.args.hidden, cfg.model.args.first_tied_layer = [8, 16], 32, 2
    cfg.train.epochs = 3
    cfg.corruption.size = 40
    cfg.corruption.discovery_rates = [0.5, 1.0]
    cfg.methods = [
        {"name": "rem", "hparams": {"epochs": 1, "batch_size": 64, "max_flush_epochs": 3}},
        {"name": "npo", "hparams": {"epochs": 1, "batch_size": 64}},
    ]
    cfg.relearn = {
        "k": [0],
        "relearn_set": "retain",
        "epochs": 0.2,
        "eval_every": 2,
        "report_last": 2,
        "augment": False,
    }
    cfg.lmc.stride = 0.5
    for dotted, value in changes.items():
        OmegaConf.update(cfg, dotted.replace("__", "."), value, merge=False)
    path.write_text(OmegaConf.to_yaml(cfg))
    return path


@pytest.fixture
def tracking(tmp_path):
    """A sqlite MLflow store and artifact folder private to the test."""
    return {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "artifacts": str(tmp_path / "artifacts")}


# Three method settings (the fewest that give a Spearman value), named here rather than read from the quickstart.
REPORT_SETTINGS = [
    {"name": "neggrad_plus", "hparams": {"lr": 1e-2, "epochs": 0.5}},
    {"name": "alternating_scrub", "hparams": {"lr": 1e-2, "epochs": 0.5, "kl_reduction": "batchmean"}},
    {"name": "weight_distortion", "hparams": {"lr": 1e-3, "epochs": 0.5, "sigma": 0.15}},
]


@pytest.fixture(scope="session")
def reported_sweeps(tmp_path_factory):
    """Two real tiny sweeps through the CLI into one sqlite store, for the report, figure and browser tests: A on two
    seeds (with its figures and report), then B, the same with another LMC stride, so only its interpolations run."""
    from orchestrator.cli import main

    folder = tmp_path_factory.mktemp("reported")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    out = {"folder": folder, "uri": uri}
    for name, changes, extra in (("a", {}, []), ("b", {"lmc__stride": 0.5}, ["--no-report"])):
        sweep = tiny_quickstart(
            folder / f"{name}.yaml",
            seeds=[43, 44],
            methods=REPORT_SETTINGS,
            tracking__artifact_location=str(folder / "artifacts"),
            **changes,
        )
        assert (
            main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(folder / name / "summary.json"), *extra])
            == 0
        )
        out[name] = json.loads((folder / name / "summary.json").read_text())
    return out
