"""The REM study's sweep files follow the reference code: `plan` of the CIFAR-10 task space on tiny CIFAR-format data
resolves every key with the reference's ResNet-9 (its parameter count checked on a planned node's config), its recipe
and its retrained baseline; the CPU task space sets the reference's options where they apply to its model."""

import pytest
from torch import nn

from orchestrator.cli import main
from orchestrator.plan import build_dag
from orchestrator.spec import load_spec
from tests.conftest import REPO
from tests.test_study_smoke import write_tiny_cifar10
from workloads.nodes import load_data
from workloads.nodes.common import node_model

SWEEPS = REPO / "configs" / "sweeps"


@pytest.mark.e2e
def test_plan_of_the_cifar10_task_space_resolves_its_keys_with_the_reference_model_and_recipe(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    # Its own label cache: these 500 tiny images have the identity of CIFAR-10 (where the data lives is no part of it),
    # and other tests plan the real CIFAR-10's sweeps without its data.
    monkeypatch.setenv("UNLEARN_SWEEP_CACHE", str(tmp_path / "cache"))
    write_tiny_cifar10(tmp_path / "cifar", per_batch=100)  # 500 images, 50 a class: 100 corrupted per corruption
    config = SWEEPS / "cifar10_rem_task_space.yaml"
    overrides = [
        f"dataset.args.root={tmp_path / 'cifar'}",
        "dataset.args.verify=false",
        "corruption.size=100",
        "seeds=[43]",
    ]
    assert (
        main(["plan", str(config), *overrides, "--no-estimate", "--tracking-uri", f"sqlite:///{tmp_path / 'p.db'}"])
        == 0
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "train_original: 3 to run" in out and "train_retrain: 30 to run" in out and "?" * 12 not in out  # keys known
    assert "10 retrained baseline(s) start from a fresh init" in out
    dag = build_dag(load_spec(config, overrides))
    original = next(node for node in dag if node.kind == "train_original")
    data = load_data(original.config.dataset)
    model = node_model(original.config, data, "cpu", 43)
    assert sum(p.numel() for p in model.parameters()) == 2_276_224  # tests/test_resnet9_rem.py counts it by hand
    assert any(isinstance(m, nn.CELU) for m in model.modules())
    train = original.config.train
    assert (train.iterations, train.overshoot, train.schedule, train.select) == (
        4000,
        True,
        "warmup_linear",
        "last",
    )
    retrain = next(node for node in dag if node.kind == "train_retrain")
    assert retrain.config.as_dict()["train"]["retrain"] == {"lr": 0.005, "init": "fresh", "tied_dropout": "drop"}
    trigger = original.config.corruption.args
    assert (trigger["draw"], trigger["stamp"], trigger["test_split"]) == ("all_classes", "after_augment", "true_label")
    assert "healed_on" not in trigger  # at the old value (the reference's slip is not followed): out of the key


def test_the_cpu_task_space_sets_the_reference_options_that_apply_to_its_model():
    spec = load_spec(SWEEPS / "rem_task_space_cpu.yaml", [])
    assert spec.model.args["drop_scale"] == "none"
    assert spec.train.retrain.init == "fresh" and spec.train.retrain.tied_dropout == "drop"
    assert spec.train.retrain.lr is None  # the reference's lr / 5 undertrains this proxy (the file says why)
    kinds = {kind.name: kind.args for kind in spec.corruption.kinds}
    assert kinds["poison_trigger"]["draw"] == "all_classes" and kinds["interclass_swap"]["utility"] == "other_classes"
