"""What a researcher looks at, from real tiny two-seed sweeps through the CLI into a sqlite MLflow store
(conftest.reported_sweeps): every figure, the HTML report, the runs MLflow compares (result runs, node runs' params,
links to cached nodes), and the commands that read the record (`report`, `compare`, `status`, `cache`), none of
which recomputes a node."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.report.figures import DPI, FIGURES
from orchestrator.report.ranking import default_floor, resistance_order
from orchestrator.report.rows import Model, models
from orchestrator.report.verdicts import reading
from orchestrator.track.store import EXPERIMENT_KIND
from tests.conftest import REPORT_SETTINGS

METHODS = tuple(s["name"] for s in REPORT_SETTINGS)


@pytest.fixture(scope="module")
def sweeps(reported_sweeps):
    return reported_sweeps  # shared with test_browser.py: one pair of sweeps per test session


def runs_of(uri: str, sweep_id: str, kind: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unlearn-sweep")
    return client.search_runs(
        [experiment.experiment_id], f"tags.sweep_id = '{sweep_id}' and tags.node_kind = '{kind}'", max_results=1000
    )


def node_run_count(uri: str) -> int:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unlearn-sweep")
    return sum("node_key" in r.data.tags for r in client.search_runs([experiment.experiment_id], "", max_results=5000))


# -- figures ---------------------------------------------------------------------------------------------------------
def series(fig) -> list[int]:
    """Labelled series per panel (each line, error-bar set or point is one model)."""
    return [len(ax.get_legend_handles_labels()[0]) for ax in fig.axes]


@pytest.mark.e2e
def test_every_figure_has_one_series_per_model_and_decodes_at_its_size(sweeps):
    summary, folder = sweeps["a"], sweeps["folder"] / "a" / "report"
    all_models = 2 + len(METHODS)  # original, retrained control, one setting per method
    expected = {
        "relearning_curves": [all_models] * 2,
        "recovery_vs_k": [all_models],
        "forget_vs_test": [all_models] * 2,
        "lmc": [all_models - 1] * 2,
        "weightspace_vs_recovery": [all_models - 1] * 4,
    }  # the original has no path to itself
    for name, draw in FIGURES.items():
        fig = draw(summary)
        if name not in expected:  # a task space's heatmaps, a population's epsilon: nothing to draw for this sweep
            assert fig is None, name
            continue
        assert series(fig) == expected[name], name
        width, height = (round(v * DPI) for v in fig.get_size_inches())
        png = imread(folder / f"{name}.png")  # written by `run`
        assert png.shape[:2] == (height, width) and png[..., :3].std() > 0.05, name  # the size drawn, not blank
        svg = ET.parse(folder / f"{name}.svg").getroot()
        assert svg.tag.endswith("svg") and float(svg.get("width").removesuffix("pt")) == pytest.approx(width * 72 / DPI)
        assert len(svg.findall(".//{http://www.w3.org/2000/svg}path")) > 20, name
    relearning = FIGURES["relearning_curves"](summary).axes[0]
    styles = {bars.get_label(): bars.lines[0].get_linestyle() for bars in relearning.containers}  # each curve's line
    assert styles["retrain (control)"] == "--" and styles["original"] == ":"  # control dashed, original dotted
    curves = {bars.get_label(): bars.lines[0] for bars in relearning.containers}
    assert {line.get_xdata()[0] for line in curves.values()} == {0}  # from the model before the attack
    assert len({str(line.get_color()) for line in curves.values()}) == len(curves)  # a colour per model
    assert max(max(line.get_ydata()) for line in curves.values()) > 1  # in %, as the tables print it
    found = summary["correlations"]["l2_to_original_vs_recovery_k0"]
    title = FIGURES["weightspace_vs_recovery"](summary).axes[0].get_title()
    assert f"ρ = {found['spearman']:.2f} (p " in title and f"n = {found['n']})" in title
    assert FIGURES["recovery_vs_k"](only_k(summary, "10")) is None  # one k: a column of points, not a figure


METRIC_ROUNDING = 5e-4  # result runs log metrics rounded, legible in MLflow's runs table


def drawn(summary: dict) -> int:
    """How many figures this summary has something to draw for."""
    return sum(draw(summary) is not None for draw in FIGURES.values())


def only_k(value, k: str):
    """The summary as if its relearning grid were k alone."""
    if isinstance(value, dict):
        return {
            key: ({k: only_k(v[k], k)} if key == "relearned" and isinstance(v, dict) and k in v else only_k(v, k))
            for key, v in value.items()
        }
    return [only_k(v, k) for v in value] if isinstance(value, list) else value


@pytest.mark.e2e
def test_with_several_seeds_points_are_means_with_error_bars(sweeps):
    summary = sweeps["a"]
    neggrad = next(m for m in models(summary) if m.method == "neggrad_plus")
    test = [r["unlearned"]["test_acc"] for r in summary["results"] if r["method"] == "neggrad_plus"]
    assert neggrad.mean("unlearned.test_acc") == pytest.approx(sum(test) / 2) and neggrad.sd("unlearned.test_acc") > 0
    ax = FIGURES["forget_vs_test"](summary).axes[0]
    bars = [c for c in ax.containers if c.get_label() == neggrad.name][0]
    assert bars.has_xerr and bars.has_yerr
    one_seed = {**summary, "seeds": summary["seeds"][:1], "results": [r for r in summary["results"] if r["seed"] == 43]}
    assert all(not c.has_yerr for c in FIGURES["forget_vs_test"](one_seed).axes[0].containers)


# -- the report's ordering rule, on constructed results ---------------------------------------------------------------
def model(name: str, test: float, after, role: str = "unlearned", k0: float = 0.9) -> Model:
    relearned = {
        "0": {"heldout_forget_acc": k0},
        **({"10": {"heldout_forget_acc": after}} if after is not None else {}),
    }
    row = {
        "seed": 1,
        "run_id": name,
        "unlearned": {"test_acc": test, "heldout_forget_acc": 0.1},
        "relearned": relearned,
        "l2_to_original": None,
        "lmc": None,
    }
    return Model(name, role, name, rows=[row])


def test_usable_settings_come_first_ranked_by_what_the_strongest_attack_gets_back_and_controls_are_not_ranked():
    shown = [
        model("original", 0.93, 0.90, role="original"),
        model("broken", 0.50, 0.05),
        model("resists", 0.91, 0.20),
        model("retrain", 0.90, 0.30, role="retrain"),
        model("relearns", 0.95, 0.80, k0=0.1),
        model("tie-better-test", 0.92, 0.20),
        model("damaged", 0.89, 0.01),
        model("no numbers", 0.9, None),
    ]
    # Usable = not damaged in the readings' sense (verdicts.py): within 3 test points of the original's.
    floor = default_floor(shown)
    assert floor == pytest.approx(0.90)
    summary = {"verdicts": {"criteria": {"test_margin": 0.05}}}
    assert default_floor(shown, summary) == pytest.approx(0.88)  # the margin the sweep's readings used
    order = resistance_order(shown, 10, floor)
    assert [r.model.name for r in order] == [
        "tie-better-test",
        "resists",
        "relearns",
        "damaged",
        "broken",
        "no numbers",
    ]  # the original and the retrained control are references, not ranked
    assert [r.usable for r in order] == [True, True, True, False, False, False]
    assert [r.model.name for r in resistance_order(shown, 10, None)][0] == "damaged"  # without a floor: lowest first
    assert resistance_order(shown, 0, floor)[0].model.name == "relearns"  # k chooses the attack
    assert reading({"looks_clean": False, "test_drop": 0.04, "recovery": 0.2, "recovers": True}, 0.03) == (
        "damaged; relearns +20"
    )  # the word every table and the runs' `reading` tag use for what falls below the floor


# -- MLflow runs -----------------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_results_are_runs_comparable_by_method_with_the_tables_numbers(sweeps):
    summary, client = sweeps["a"], MlflowClient(sweeps["uri"])
    results = runs_of(sweeps["uri"], summary["sweep_id"], "result")
    assert len(results) == (2 + len(METHODS)) * 2  # every model on both seeds
    scrub = next(r for r in results if r.data.params["method"] == "alternating_scrub" and r.data.params["seed"] == "44")
    row = next(r for r in summary["results"] if r["method"] == "alternating_scrub" and r["seed"] == 44)
    assert scrub.data.metrics["heldout_forget_acc"] == pytest.approx(
        row["unlearned"]["heldout_forget_acc"], rel=METRIC_ROUNDING, abs=METRIC_ROUNDING
    )
    assert scrub.data.metrics["relearned_k10_heldout_forget_acc"] == pytest.approx(
        row["relearned"]["10"]["heldout_forget_acc"], rel=METRIC_ROUNDING, abs=METRIC_ROUNDING
    )
    assert scrub.data.metrics["recovery_k0"] == pytest.approx(
        row["relearned"]["0"]["heldout_forget_acc"] - row["unlearned"]["heldout_forget_acc"],
        rel=METRIC_ROUNDING,
        abs=METRIC_ROUNDING,
    )
    assert scrub.data.metrics["l2_to_original"] == pytest.approx(
        row["l2_to_original"], rel=METRIC_ROUNDING, abs=METRIC_ROUNDING
    )
    assert scrub.data.metrics["loss_barrier"] == pytest.approx(
        row["lmc"]["loss_barrier"], rel=METRIC_ROUNDING, abs=METRIC_ROUNDING
    )
    assert scrub.data.params["start_from"] == "original" and json.loads(scrub.data.tags["hparams"]) == row["hparams"]
    assert all(
        scrub.data.params[f"hparams.{k}"] == str(v)
        for k, v in row["hparams"].items()
        if f"hparams.{k}" in scrub.data.params
    )  # the hparams that tell the settings apart are params (columns)
    assert scrub.data.tags["model_run_id"] == row["run_id"] and scrub.data.tags["mlflow.user"]
    # Tags a researcher filters and groups by, in the readings' words.
    assert scrub.data.tags["role"] == "method" and scrub.data.tags["setting"]
    assert {r.data.tags["role"] for r in results} == {"original", "control", "method"}
    assert {r.data.tags["reading"] for r in results if r.data.tags["role"] != "method"} == {"reference"}
    # The relearning curve from step 0: the model before the attack, then the attack's evaluations.
    curve = client.get_metric_history(scrub.info.run_id, "curve_k10_heldout_forget_acc")
    assert min(m.step for m in curve) == 0 and len(curve) >= 2
    assert [d.dataset.name for d in scrub.inputs.dataset_inputs] == ["mnist1d"]
    # Node runs carry what they measure under the same names, whatever their kind.
    for kind in ("evaluate", "relearn", "unlearn", "interpolate"):
        run = next(
            r
            for r in runs_of(sweeps["uri"], summary["sweep_id"], kind)
            if r.data.params.get("method") == "neggrad_plus"
        )
        assert {"hparams.lr", "seed", "setting", "start_from"} <= set(run.data.params), kind
        assert run.data.tags["mlflow.source.name"] == "unlearn-sweep" and run.data.tags["mlflow.user"]
        assert run.inputs.dataset_inputs[0].tags[0].value == kind  # the dataset, in the node's context
    evaluate = runs_of(sweeps["uri"], summary["sweep_id"], "evaluate")
    assert {r.data.params["method"] for r in evaluate} == {"original", "retrain", *METHODS}
    parent = runs_of(sweeps["uri"], summary["sweep_id"], "sweep")[0]
    assert {"summary.json", "over_seeds.json", "results.json", "report"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }
    assert {"report/report.html", "report/lmc.png", "report/lmc.svg"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id, "report")
    }
    experiment = client.get_experiment_by_name("unlearn-sweep")
    assert experiment.tags[EXPERIMENT_KIND[0]] == EXPERIMENT_KIND[1]  # set when the sweep created the experiment
    view = json.loads(experiment.tags["mlflow.sharedViewState.results"])
    assert (
        view["searchFilter"] == f"tags.node_kind = 'result' and tags.sweep_id = '{sweeps['b']['sweep_id']}'"
    )  # the latest
    assert view["columnOrder"][:3] == [
        "attributes.`Run Name`",
        "metrics.`relearned_k10_heldout_forget_acc`",
        "metrics.`recovery_k10`",
    ]  # the strongest attack's numbers beside the names, where the table opens
    assert {"tags.`role`", "tags.`reading`"} <= set(view["selectedColumns"])
    assert view["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": "setting"}]  # a row per setting


@pytest.mark.e2e
def test_a_later_sweep_links_every_cached_node_under_its_run_and_lookups_ignore_the_links(sweeps):
    b, uri = sweeps["b"], sweeps["uri"]
    links = runs_of(uri, b["sweep_id"], "link")
    parent = runs_of(uri, b["sweep_id"], "sweep")[0]
    executed = [
        r
        for r in MlflowClient(uri).search_runs(["1"], f"tags.sweep_id = '{b['sweep_id']}'", max_results=1000)
        if "node_key" in r.data.tags
    ]
    paths = (1 + len(METHODS)) * 2  # an LMC path per model but the original, per seed
    assert b["nodes"]["executed"] == len(executed) == paths and {r.data.tags["node_kind"] for r in executed} == {
        "interpolate"
    }
    assert len(links) == b["nodes"]["cached"] == b["nodes"]["total"] - paths  # every node it used, executed or linked
    for link in links:
        assert link.data.tags["mlflow.parentRunId"] == parent.info.run_id and "node_key" not in link.data.tags
        held = MlflowClient(uri).get_run(link.data.tags["linked.run_id"])
        assert held.data.tags["node_key"] == link.data.tags["linked.node_key"] and held.info.status == "FINISHED"
        assert held.data.tags[f"reused_by.{b['sweep_id']}"] == parent.info.run_id
    assert parent.data.metrics["nodes_executed"] == paths and parent.data.metrics["nodes_done"] == b["nodes"]["total"]


# -- commands that read the record -----------------------------------------------------------------------------------
@pytest.mark.e2e
def test_report_redraws_an_earlier_sweep_from_its_id_run_or_summary_without_computing(sweeps, tmp_path, capsys):
    a, uri = sweeps["a"], sweeps["uri"]
    parent = runs_of(uri, a["sweep_id"], "sweep")[0].info.run_id
    before = node_run_count(uri)
    for ref, folder in (
        (a["sweep_id"], tmp_path / "by-id"),
        (parent, tmp_path / "by-run"),
        (str(sweeps["folder"] / "a" / "summary.json"), tmp_path / "by-file"),
    ):
        assert main(["report", ref, "--tracking-uri", uri, "--out", str(folder)]) == 0
        html = (folder / "report.html").read_text()
        assert all(m in html for m in METHODS) and html.count("data:image/svg+xml;base64,") == drawn(sweeps["a"])
        assert {p.name for p in folder.glob("*.png")} == {f"{name}.png" for name, draw in FIGURES.items() if draw(a)}
    assert node_run_count(uri) == before  # recomputed nothing
    assert "accuracy (%) on held-out forget examples" in capsys.readouterr().out


@pytest.mark.e2e
def test_compare_names_the_config_change_and_the_metric_deltas(sweeps, capsys):
    assert main(["compare", sweeps["a"]["sweep_id"], sweeps["b"]["sweep_id"], "--tracking-uri", sweeps["uri"]]) == 0
    out = capsys.readouterr().out
    config = out[out.index("config: what differs") : out.index("metrics, A → B")]
    assert "lmc.stride" in config and "0.25" in config and "0.5" in config and "seeds" not in config
    assert all(m in out for m in METHODS) and "→" in out and "(+0.0)" in out  # same models: unchanged accuracies


@pytest.mark.e2e
def test_status_lists_each_sweep_with_its_nodes_and_who_ran_it(sweeps, capsys):
    assert main(["status", "--tracking-uri", sweeps["uri"]]) == 0
    out = capsys.readouterr().out
    for s in (sweeps["a"], sweeps["b"]):
        assert s["sweep_id"] in out
    assert out.count("finished") == 2 and f"{sweeps['a']['nodes']['total']}/{sweeps['a']['nodes']['total']}" in out


@pytest.mark.e2e
def test_cache_ls_verify_and_gc(sweeps, capsys):
    uri, client = sweeps["uri"], MlflowClient(sweeps["uri"])
    assert main(["cache", "ls", "--tracking-uri", uri]) == 0
    listing = capsys.readouterr().out
    assert "train_original" in listing and "interpolate" in listing and "total" in listing
    assert main(["cache", "verify", "--tracking-uri", uri]) == 0
    assert f"{node_run_count(uri)} ok, 0 failed" in capsys.readouterr().out.replace("\n", " ")
    # A tampered checkpoint (same size) is named by verify, and only it.
    retrain = sweeps["a"]["retrain"]["run_id"]
    checkpoint = Path(client.get_run(retrain).info.artifact_uri.removeprefix("file://")) / "model.pt"
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[:-8] + b"tampered")
    try:
        assert main(["cache", "verify", "--tracking-uri", uri]) == 1
        out = capsys.readouterr().out
        assert retrain in out and "model.pt: sha256 differs" in out and "1 failed" in out
    finally:
        checkpoint.write_bytes(good)
    # Garbage: a claim run its sweep deleted (it lost the claim) and a folder no run owns.
    lost = client.create_run("1", tags={"node_key": "k" * 64, "node_kind": "unlearn"}).info.run_id
    client.delete_run(lost)
    orphan = Path(client.get_run(retrain).info.artifact_uri.removeprefix("file://")).parent.parent / ("f" * 32)
    (orphan / "artifacts").mkdir(parents=True)
    (orphan / "artifacts" / "model.pt").write_bytes(b"x" * 100)
    assert main(["cache", "gc", "--tracking-uri", uri]) == 0
    dry = capsys.readouterr().out
    assert lost in dry and "f" * 32 in dry and "dry run" in dry and orphan.exists()
    assert main(["cache", "gc", "--yes", "--tracking-uri", uri]) == 0
    assert not orphan.exists() and lost not in {
        r.info.run_id for r in client.search_runs(["1"], "", run_view_type=3, max_results=5000)
    }
    capsys.readouterr()
    assert main(["cache", "gc", "--tracking-uri", uri]) == 0
    assert "0 deleted claim runs, 0 orphaned artifact folders" in capsys.readouterr().out
    assert main(["cache", "verify", "--tracking-uri", uri]) == 0  # every result survived


@pytest.mark.e2e
@pytest.mark.parametrize(
    "argv, names",
    [
        (["report", "no-such-sweep"], "no sweep 'no-such-sweep'"),
        (["report", "nowhere/summary.json"], "nowhere/summary.json: not a readable summary.json"),
        (["compare", "a-sweep", "another"], "no sweep 'a-sweep'"),
        (["cache", "ls", "--experiment", "nope"], "no experiment 'nope'"),
    ],
)
def test_bad_input_is_one_line_naming_it_with_exit_code_2(sweeps, argv, names, capsys):
    assert main([*argv, "--tracking-uri", sweeps["uri"]]) == 2
    err = capsys.readouterr().err
    assert names in " ".join(err.split()) and "Traceback" not in err


@pytest.mark.e2e
def test_reading_commands_never_create_a_store(tmp_path, capsys):
    assert main(["status", "--tracking-uri", f"sqlite:///{tmp_path / 'missing.db'}"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err and not (tmp_path / "missing.db").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("unlearn-sweep ")
