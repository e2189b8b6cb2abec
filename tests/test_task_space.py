"""A corrupted-data task space end to end: a tiny real sweep through the CLI (three corruptions x two discovery
rates, REM and NPO) whose MLflow store holds one original per corruption, reused by every rate and method; its
summary's task-space table and heatmaps; the averages over the space against a hand computation; and `plan` of the
CIFAR-10 study, which says what it shares."""

import json
import math
import statistics
from collections import defaultdict

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.report.table import task_space_table
from orchestrator.report.task_space import task_space
from tests.conftest import REPO, tiny_task_space


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("task_space")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    sweep = tiny_task_space(folder / "sweep.yaml", tracking__artifact_location=str(folder / "artifacts"))
    assert (
        main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(folder / "summary.json"), "--threads", "2"])
        == 0
    )
    return {"folder": folder, "uri": uri, "summary": json.loads((folder / "summary.json").read_text())}


def runs_of(swept, kind):
    client = MlflowClient(swept["uri"])
    experiment = client.get_experiment_by_name("unlearn-sweep")
    return client.search_runs(
        [experiment.experiment_id], f"tags.node_kind = '{kind}' and attributes.status = 'FINISHED'"
    )


@pytest.mark.e2e
def test_one_original_per_corruption_is_trained_and_every_rate_and_method_starts_from_it(swept):
    originals = {r.data.tags["node_key"]: r.data.params["corruption.name"] for r in runs_of(swept, "train_original")}
    assert sorted(originals.values()) == ["interclass_swap", "poison_trigger", "random_swap"]  # 3 corruptions x 1 seed
    unlearned = runs_of(swept, "unlearn")
    assert len(unlearned) == 3 * 2 * 2  # corruptions x rates x methods
    served = defaultdict(set)
    for run in unlearned:
        original = run.data.tags["input.original"]
        assert originals[original] == run.data.params["corruption.name"]  # its own corruption's original
        served[original].add((run.data.params["discovery_rate"], run.data.params["method"]))
    assert all(cells == {(r, m) for r in ("0.5", "1.0") for m in ("rem", "npo")} for cells in served.values())
    retrained = runs_of(swept, "train_retrain")
    assert sorted((r.data.params["corruption.name"], r.data.params["discovery_rate"]) for r in retrained) == sorted(
        (c, r) for c in originals.values() for r in ("0.5", "1.0")
    )  # a retrained baseline per cell
    # Relearning attacks, L2 and LMC attach to the models of the analysed rate (1.0), against their corruption's
    # original
    for kind in ("distance", "interpolate"):
        assert {r.data.tags["input.a"] for r in runs_of(swept, kind)} == set(originals)
        assert len(runs_of(swept, kind)) == 3 * 3  # retrained, REM, NPO
    relearned = runs_of(swept, "relearn")
    assert len(relearned) == 3 * 4 and {r.data.params["forget.discovery_rate"] for r in relearned} == {"1.0"}


@pytest.mark.e2e
def test_the_summary_holds_the_healed_measures_and_the_table_is_the_hand_computed_average(swept):
    summary = swept["summary"]
    space = summary["task_space"]
    assert space["corruptions"] == ["poison_trigger", "interclass_swap", "random_swap"]  # high to low regularity
    assert space["discovery_rates"] == [0.5, 1.0]
    named = {model.split()[0]: model for model in space["models"]}  # a setting's name carries its changed hparams
    assert list(named) == ["original", "retrain", "rem", "npo"]
    for row in summary["results"]:
        u = row["unlearned"]
        if row["corruption"] != "interclass_swap":  # the swap's utility is test accuracy on its other classes
            assert u["utility"] == u["test_acc"]
        assert u["utility_x_healed"] == pytest.approx(u["utility"] * u["healed"])
        assert ("healed_trigger" in u) == (row["corruption"] == "poison_trigger")
    for method in ("rem", "npo"):
        cells = [r["unlearned"]["utility_x_healed"] for r in summary["results"] if r["method"] == method]
        assert len(cells) == 6
        assert space["averages"][named[method]]["utility_x_healed"]["mean"] == pytest.approx(statistics.fmean(cells))
        grid = space["heatmaps"][named[method]]["utility_x_healed"]
        by_cell = {
            (r["corruption"], r["discovery_rate"]): r["unlearned"]["utility_x_healed"]
            for r in summary["results"]
            if r["method"] == method
        }
        assert grid == [[by_cell[(c, rate)] for rate in space["discovery_rates"]] for c in space["corruptions"]]
    table = task_space_table(summary)
    cells = {table.columns[0]._cells[i]: [c._cells[i] for c in table.columns] for i in range(len(space["models"]))}
    for model in space["models"]:
        found = space["averages"][model]
        assert cells[model][1:5] == [
            str(found["cells"]),
            *(f"{100 * found[m]['mean']:.1f}" for m in ("utility", "healed", "utility_x_healed")),
        ]
        assert found["cells"] == 6 and found["utility_x_healed"]["se"] is None  # one seed: no standard error


@pytest.mark.e2e
def test_the_heatmaps_are_written_beside_the_report(swept):
    report = swept["folder"] / "report"
    for measure in ("utility_x_healed", "healed", "utility"):
        png = report / f"task_space_{measure}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "task_space_utility_x_healed" in (report / "report.html").read_text()


def test_averages_over_the_space_are_means_over_seeds_of_each_seeds_mean_with_their_standard_error():
    rows = []
    values = {
        (43, "random_swap", 0.5): 0.2,
        (43, "random_swap", 1.0): 0.4,
        (44, "random_swap", 0.5): 0.5,
        (44, "random_swap", 1.0): 0.9,
        (43, "poison_trigger", 0.5): 0.1,
        (44, "poison_trigger", 0.5): 0.3,
    }
    for (seed, corruption, rate), value in values.items():
        rows.append(
            {
                "method": "npo",
                "hparams": {},
                "seed": seed,
                "corruption": corruption,
                "discovery_rate": rate,
                "run_id": f"{seed}{corruption}{rate}",
                "unlearned": {"utility": 1.0, "healed": value, "utility_x_healed": value},
            }
        )
    space = task_space({"results": rows, "seeds": [], "method_overrides": {}})
    seed_means = [statistics.fmean([0.2, 0.4, 0.1]), statistics.fmean([0.5, 0.9, 0.3])]
    found = space["averages"]["npo"]["utility_x_healed"]
    assert found["mean"] == pytest.approx(statistics.fmean(seed_means)) and found["n"] == 2
    assert found["se"] == pytest.approx(statistics.stdev(seed_means) / math.sqrt(2))
    assert space["corruptions"] == ["poison_trigger", "random_swap"]
    assert space["heatmaps"]["npo"]["healed"] == [
        [pytest.approx(0.2), None],
        [pytest.approx(0.35), pytest.approx(0.65)],
    ]


@pytest.mark.e2e
def test_plan_of_the_cifar10_study_lists_it_and_says_what_is_shared(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")  # node labels unwrapped
    config = REPO / "configs" / "sweeps" / "cifar10_rem_task_space.yaml"
    assert main(["plan", str(config), "--tracking-uri", f"sqlite:///{tmp_path / 'plan.db'}"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "original seed=43 poison_trigger" in out and "unlearn rem seed=45 random_swap rate=0.1" in out
    assert "train_original: 9 to run" in out and "train_retrain: 90 to run" in out and "unlearn: 810 to run" in out
    assert (
        "9 originals, one per corruption × seed, each shared by 10 discovery rates x 9 method settings: 90 unlearn"
        in out
    )
