"""Bad input fails before anything runs, with one message naming the key or file, and exit code 2."""

import pytest

from orchestrator.cli import main
from orchestrator.spec import SpecError, load_spec
from tests.conftest import QUICKSTART


def test_quickstart_loads_with_method_defaults_filled_in():
    spec = load_spec(QUICKSTART)
    assert spec.name == "quickstart" and [m.name for m in spec.methods][:2] == ["finetune", "neggrad_plus"]


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.epochz=3", "train.epochz"),
        ("epochs=3", "epochs"),
        ("train.epochs=many", "train.epochs"),
        ("relearn.k=[0,banana]", "relearn.k"),
        ("forget.criterion=loudest", "forget.criterion"),
        ("forget.fraction=1.5", "forget.fraction"),
        ("dataset.name=imagenet", "dataset.name"),
        ("dataset.args.colour=1", "colour"),
        ("model.args.channels=wide", "model.args.channels"),
        ("methods=[{name: forget_everything}]", "methods[0].name"),
        ("methods=[{name: finetune, hparams: {lr: fast}}]", "methods[0].hparams"),
        ("methods=[{name: alternating_scrub, hparams: {temperature: 2}}]", "temperature"),
    ],
)
def test_bad_values_are_rejected_naming_the_key(override, named):
    with pytest.raises(SpecError) as error:
        load_spec(QUICKSTART, [override])
    assert named in str(error.value)


def test_missing_file_and_malformed_override(tmp_path):
    with pytest.raises(SpecError, match="no such sweep file"):
        load_spec(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ntrain: {epochs: 3\n")
    with pytest.raises(SpecError, match="broken.yaml: not valid YAML.*line"):
        load_spec(broken)
    with pytest.raises(SpecError, match="expected key=value"):
        load_spec(QUICKSTART, ["train.epochs"])


@pytest.mark.e2e
def test_cli_exits_2_with_one_message_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["run", str(QUICKSTART), "train.epochz=3", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    err = capsys.readouterr().err
    assert code == 2
    assert "train.epochz" in err and "Traceback" not in err
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "summary.json").exists()


def test_a_sweep_can_start_from_another_and_change_one_key(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"base: {QUICKSTART}\nname: child\ntrain: {{epochs: 7}}\n")
    spec = load_spec(child)
    assert spec.name == "child" and spec.train.epochs == 7
    assert spec.train.lr == load_spec(QUICKSTART).train.lr
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop.yaml\n")
    with pytest.raises(SpecError, match="include each other"):
        load_spec(loop)
