"""Bad input costs a second: each case of the catalogue exits 2 before any job starts, with one line that names the
sweep file and the key (or the file itself), and leaves nothing in the store. The base is the tiny quickstart, so a
case that slipped through would start training at once and fail the 'nothing in the store' check."""

import json
import sqlite3

import pytest

from orchestrator.cli import main
from tests.conftest import tiny_quickstart, tiny_task_space

pytestmark = pytest.mark.e2e

# (case, overrides on the tiny quickstart, what the message must name)
OVERRIDES = [
    ("unknown top-level key", ["epochz=3"], "epochz"),
    ("misspelt train key", ["train.epochz=3"], "train.epochz"),
    ("misspelt forget key", ["forget.fractoin=0.1"], "forget.fractoin"),
    ("misspelt relearn key", ["relearn.kk=[0]"], "relearn.kk"),
    ("misspelt lmc key", ["lmc.strid=0.5"], "lmc.strid"),
    ("misspelt memorization key", ["memorization.num_model=3"], "memorization.num_model"),
    ("misspelt method hparam", ["methods=[{name: finetune, hparams: {lrr: 0.1}}]"], "lrr"),
    ("misspelt dataset arg", ["dataset.args.colour=1"], "colour"),
    ("misspelt model arg", ["model.args.chanels=[4]"], "chanels"),
    ("wrong type", ["train.epochs=many"], "train.epochs"),
    ("wrong type in a list", ["relearn.k=[0,banana]"], "relearn.k"),
    ("wrong type of an hparam", ["methods=[{name: finetune, hparams: {lr: fast}}]"], "methods[0].hparams"),
    ("unknown method", ["methods=[{name: forget_everything}]"], "methods[0].name"),
    ("unknown dataset", ["dataset.name=imagenet"], "dataset.name"),
    ("unknown model", ["model.name=vgg99"], "model.name"),
    ("unknown relearn set", ["relearn.relearn_set=everything"], "relearn.relearn_set"),
    ("unknown forget criterion", ["forget.criterion=loudest"], "forget.criterion"),
    ("unknown precision", ["speed.precision=fp8"], "speed.precision"),
    ("unknown profile", ["fastest"], "fastest"),
    ("forget fraction above 1", ["forget.fraction=1.5"], "forget.fraction"),
    ("forget fraction 0", ["forget.fraction=0"], "forget.fraction"),
    ("memorization subset fraction 1", ["memorization.subset_fraction=1.0"], "memorization.subset_fraction"),
    ("an empty forget set", ["forget.fraction=0.0001"], "forget.fraction"),
    ("a dataset too small for the k grid", ["dataset.args.num_samples=200"], "relearn.k"),
    ("target class out of range", ["forget.target_class=12"], "forget.target_class"),
    ("k beyond the attack pool", ["relearn.k=[0,500]"], "relearn.k"),
    ("negative k", ["relearn.k=[-1]"], "relearn.k"),
    ("zero training epochs", ["train.epochs=0"], "train.epochs"),
    ("zero batch size", ["train.batch_size=0"], "train.batch_size"),
    ("negative learning rate", ["train.lr=-0.1"], "train.lr"),
    ("zero unlearning epochs", ["methods=[{name: finetune, hparams: {epochs: 0}}]"], "methods[0].hparams.epochs"),
    (
        "zero unlearning batch size",
        ["methods=[{name: finetune, hparams: {batch_size: 0}}]"],
        "methods[0].hparams.batch_size",
    ),
    ("zero relearning batch size", ["relearn.batch_size=0"], "relearn.batch_size"),
    ("zero evaluation interval", ["relearn.eval_every=0"], "relearn.eval_every"),
    ("zero evaluations reported", ["relearn.report_last=0"], "relearn.report_last"),
    ("zero memorization models", ["memorization.num_models=0"], "memorization.num_models"),
    ("an empty grid", ["methods=[{name: finetune, grid: {lr: []}}]"], "methods[0].grid.lr"),
    ("a chained method without its start", ["methods=[{name: tar}]"], "methods[0]"),
    ("a chain from an unknown method", ["methods=[{name: tar, start_from: {name: nothing}}]"], "methods[0].start_from"),
    ("a sweep with zero methods", ["methods=[]"], "methods"),
    ("no seeds", ["seeds=[]"], "seeds"),
    ("an LMC stride that misses t = 1", ["lmc.stride=0.3"], "lmc.stride"),
    ("a device that is not there", ["device=cuda:7"], "device"),
    ("a device that does not exist at all", ["device=tpu"], "device"),
    ("resources no worker can give", ["resources={default: {num_cpus: -1}}"], "resources"),
    (
        "a log-uniform search range from 0",
        ["search=[{name: finetune, space: {lr: {loguniform: [0, 1.0e-2]}}}]"],
        "search[0].space.lr.loguniform",
    ),
    (
        "a search range upside down",
        ["search=[{name: finetune, space: {lr: {uniform: [1.0e-2, 1.0e-3]}}}]"],
        "search[0].space.lr.uniform",
    ),
    ("an override that is not YAML", ["train.lr=[0.1"], "train.lr"),
    ("an override through a list by name", ["methods.first.hparams.lr=0.1"], "methods.first.hparams.lr"),
    ("a seed listed twice", ["seeds=[43,44,43]"], "seeds"),
    ("a NaN hyperparameter", ["methods=[{name: finetune, hparams: {lr: .nan}}]"], "methods[0].hparams.lr"),
    ("an infinite learning rate", ["train.lr=.inf"], "train.lr"),
    ("an infinite relearning rate", ["relearn.lr=-.inf"], "relearn.lr"),
    ("a sweep name that climbs out of its folder", ["name=../../x"], "name"),
    ("a sweep name with a slash", ["name=lab/sweep"], "name"),
    ("an empty sweep name", ["name=''"], "name"),
    ("a population of two", ["population={members: 2}"], "population.members"),
    ("attacked members without their weights", ["population={members: 16, relearn_k: [0]}"], "population.relearn_k"),
    ("member seeds that are the sweep's", ["population={members: 16, first_seed: 40}"], "population.first_seed"),
    (
        "populations of a worst-case forget set",
        ["forget.criterion=worst_case", "population={members: 16}"],
        "population: populations of a worst-case forget set",
    ),
]

FILES = [
    ("a YAML file that is a list", "- name: quickstart\n- seeds: [1]\n", "not a mapping"),
    ("a YAML file that is a scalar", "just words\n", "not a mapping"),
    ("malformed YAML", "name: x\ntrain: {epochs: 3\n", "not valid YAML"),
    ("an empty file", "", "empty"),
]


def run_bad(tmp_path, capsys, monkeypatch, sweep, overrides=()):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store.db"
    code = main(["run", str(sweep), *overrides, "--tracking-uri", f"sqlite:///{store}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    runs = sqlite3.connect(store).execute("select count(*) from runs").fetchone()[0] if store.exists() else 0
    return code, lines, runs


def refused_before_any_job(code, lines, runs, named, tmp_path):
    """Exit 2, one line naming the sweep file and the key, no traceback, nothing in the store, no summary."""
    assert code == 2 and len(lines) == 1, lines
    assert "sweep.yaml" in lines[0] and named in lines[0], lines[0]
    assert "Traceback" not in lines[0] and runs == 0 and not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("case, overrides, named", OVERRIDES, ids=[c[0] for c in OVERRIDES])
def test_bad_values_exit_2_naming_file_and_key_before_any_job(case, overrides, named, tmp_path, capsys, monkeypatch):
    sweep = tiny_quickstart(tmp_path / "sweep.yaml")
    refused_before_any_job(*run_bad(tmp_path, capsys, monkeypatch, sweep, overrides), named, tmp_path)


@pytest.mark.parametrize("case, text, says", FILES, ids=[c[0] for c in FILES])
def test_bad_files_exit_2_naming_the_file(case, text, says, tmp_path, capsys, monkeypatch):
    sweep = tmp_path / "broken.yaml"
    sweep.write_text(text)
    code, lines, runs = run_bad(tmp_path, capsys, monkeypatch, sweep)
    assert code == 2 and len(lines) == 1 and "broken.yaml" in lines[0] and says in lines[0], lines
    assert runs == 0


# The same promise for a corrupted-data task space (REM's), on the tiny task-space sweep.
TASK_SPACE_OVERRIDES = [
    ("unknown corruption", ["corruption.kinds=[{name: blur}]"], "corruption.kinds[0].name"),
    ("misspelt corruption key", ["corruption.sise=10"], "corruption.sise"),
    ("misspelt corruption arg", ["corruption.kinds=[{name: poison_trigger, args: {target: 0}}]"], "target"),
    ("discovery rate above 1", ["corruption.discovery_rates=[0.5,1.5]"], "corruption.discovery_rates"),
    ("negative discovery rate", ["corruption.discovery_rates=[-0.1]"], "corruption.discovery_rates"),
    ("a rate that discovers nothing", ["corruption.discovery_rates=[0.001]"], "corruption.discovery_rates"),
    ("no corruption listed", ["corruption.kinds=[]"], "corruption.kinds"),
    (
        "a corruption listed twice",
        ["corruption.kinds=[{name: random_swap}, {name: random_swap}]"],
        "corruption.kinds[1].name",
    ),
    ("zero corrupted examples", ["corruption.size=0"], "corruption.kinds[0].size"),
    (
        "a trigger target the data lacks",
        ["corruption.kinds=[{name: poison_trigger, args: {target_class: 12}}]"],
        "target_class",
    ),
    (
        "a swap larger than its classes",
        ["corruption.kinds=[{name: interclass_swap}]", "corruption.size=400"],
        "corruption.kinds[0]",
    ),
    ("an odd swap", ["corruption.kinds=[{name: interclass_swap}]", "corruption.size=21"], "corruption.kinds[0]"),
    ("REM on a model without spare channels", ["model.args.generalisation=1.0"], "methods[0]"),
    ("canaries in a task space", ["forget.canary_fraction=0.1"], "forget.canary_fraction"),
    ("an analysed rate that is not swept", ["corruption.analysed_rates=[0.3]"], "corruption.analysed_rates"),
    ("a memorisation criterion in a task space", ["forget.criterion=high_mem"], "forget.criterion"),
    ("populations of a task space", ["population={members: 16}"], "population: a corrupted-data task space"),
]


@pytest.mark.parametrize("case, overrides, named", TASK_SPACE_OVERRIDES, ids=[c[0] for c in TASK_SPACE_OVERRIDES])
def test_bad_task_space_values_exit_2_naming_file_and_key(case, overrides, named, tmp_path, capsys, monkeypatch):
    sweep = tiny_task_space(tmp_path / "sweep.yaml")
    refused_before_any_job(*run_bad(tmp_path, capsys, monkeypatch, sweep, overrides), named, tmp_path)


def test_a_missing_sweep_file(tmp_path, capsys, monkeypatch):
    code, lines, runs = run_bad(tmp_path, capsys, monkeypatch, tmp_path / "nowhere.yaml")
    assert code == 2 and len(lines) == 1 and "nowhere.yaml" in lines[0] and "no such sweep file" in lines[0]


def test_an_unreachable_tracking_server_is_one_line_before_any_job(tmp_path, capsys, monkeypatch):
    from tests.servers import free_port

    monkeypatch.chdir(tmp_path)
    sweep = tiny_quickstart(tmp_path / "sweep.yaml", tracking__artifact_location=str(tmp_path / "artifacts"))
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code = main(["run", str(sweep), "--tracking-uri", uri])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert "--tracking-uri" in lines[0] and uri in lines[0] and "Traceback" not in lines[0]
    assert (
        not (tmp_path / "artifacts").exists()
        and not (tmp_path / "summary.json").exists()
        and not (tmp_path / "mlflow.db").exists()
    )


def test_a_ray_jobs_entrypoint_refuses_a_store_that_goes_with_the_job(tmp_path, capsys, monkeypatch):
    """The entrypoint's environment as Ray's job supervisor sets it (ray/dashboard/modules/job/job_supervisor.py:
    RAY_JOB_CONFIG_JSON_ENV_VAR holding the job's runtime_env), run in the job's working directory.
    tests/test_ray_job.py does the same through a real `ray start --head` and `ray job submit` (a deploy test)."""
    job = tmp_path / "_ray_pkg_0123"
    job.mkdir()
    monkeypatch.chdir(job)
    monkeypatch.setenv(
        "RAY_JOB_CONFIG_JSON_ENV_VAR",
        json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg_0123.zip"}, "metadata": {}}),
    )
    sweep = tiny_quickstart(job / "sweep.yaml")
    assert main(["run", str(sweep)]) == 2  # the quickstart's sqlite:///mlflow.db, here
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    said = " ".join(" ".join(lines).split())
    assert "sweep.yaml: tracking.uri: sqlite:///mlflow.db is in this Ray Job's working directory" in said, said
    assert "--tracking-uri sqlite:////ABSOLUTE/PATH/mlflow.db" in said and "Traceback" not in said
    outside = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    sweep = tiny_quickstart(job / "sweep.yaml", tracking__artifact_location="mlartifacts")
    assert main(["run", str(sweep), "--tracking-uri", outside]) == 2  # a store outside, checkpoints inside
    said = " ".join(capsys.readouterr().err.split())
    assert "sweep.yaml: tracking.artifact_location: mlartifacts is in this Ray Job's working directory" in said, said
    assert not list(tmp_path.rglob("mlflow.db")) and not list(tmp_path.rglob("mlartifacts"))  # nothing written


# The command line's own arguments: one line naming the argument, exit 2, before a store or a Ray is started.
ARGUMENTS = [
    ("--workers 0 on Ray", ["--executor", "ray", "--workers", "0"], "--workers"),
    ("negative threads", ["--threads", "-1"], "--threads"),
    ("threads in words", ["--threads", "two"], "--threads"),
    ("negative retries", ["--retries", "-1"], "--retries"),
    ("a test floor above 1", ["--test-floor", "1.5"], "--test-floor"),
    ("workers without Ray", ["--workers", "2"], "--workers"),
    ("a Ray address without Ray", ["--address", "auto"], "--address"),
    ("a report folder and no report", ["--no-report", "--report-dir", "figures"], "--report-dir"),
    ("a summary that is a folder", ["--summary", "."], "--summary"),
    ("an unknown executor", ["--executor", "slurm"], "--executor"),
]


@pytest.mark.parametrize("case, arguments, named", ARGUMENTS, ids=[c[0] for c in ARGUMENTS])
def test_bad_arguments_exit_2_naming_the_argument(case, arguments, named, tmp_path, capsys, monkeypatch):
    sweep = tiny_quickstart(tmp_path / "sweep.yaml")
    code, lines, runs = run_bad(tmp_path, capsys, monkeypatch, sweep, arguments)
    assert code == 2 and len(lines) == 1 and named in lines[0] and "Traceback" not in lines[0], lines
    assert runs == 0 and not (tmp_path / "store.db").exists() and not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize(
    "arguments, named",
    [
        (["status", "--limit", "0"], "--limit"),
        (["side-by-side", "summary.json"], "sweeps"),
        (["report", "summary.json", "--test-floor", "-0.1"], "--test-floor"),
        (["cache", "clean"], "action"),
    ],
)
def test_bad_arguments_of_the_reading_commands(arguments, named, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(arguments) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0], lines
    assert not list(tmp_path.iterdir())  # no store created
