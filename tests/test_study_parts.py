"""The pieces the study adds around the methods: chaining rules, C-score files, canaries, speed settings."""

import numpy as np
import pytest
import torch

from orchestrator.plan import build_dag
from orchestrator.spec import SpecError, load_spec
from orchestrator.track import Tracker
from tests.conftest import QUICKSTART, REPO, tiny_quickstart
from workloads.forget import ForgetConfig, select_forget_set
from workloads.memorization import memorization_from_cscores
from workloads.models import CNN1DConfig, build_model
from workloads.speed import SpeedConfig, effective_precision, prepare_images, prepare_model


def test_tar_without_an_initial_safeguard_is_rejected_naming_the_method():
    with pytest.raises(SpecError, match=r"methods\[0\]: tar needs an initial safeguard"):
        load_spec(QUICKSTART, ["methods=[{name: tar}]"])


def test_a_chain_shares_its_start_with_the_standalone_run(tmp_path):
    sweep = tiny_quickstart(
        tmp_path / "s.yaml",
        methods=[
            {"name": "weight_distortion"},
            {"name": "tar", "start_from": {"name": "weight_distortion"}},
            {"name": "weight_dist_reg", "start_from": {"name": "weight_distortion", "hparams": {"sigma": 0.5}}},
        ],
    )
    dag = build_dag(load_spec(sweep))
    unlearn = [n for n in dag if n.kind == "unlearn"]
    assert len(unlearn) == 4  # weight_distortion twice (two sigmas), tar, weight_dist_reg
    standalone, tar = dag.results[0].nodes.model, dag.results[1].nodes.model
    assert tar.inputs["start"] is standalone and tar.inputs["original"] is dag.controls[43].original.model
    assert dag.results[2].nodes.model.inputs["start"].config.hparams.sigma == 0.5


def test_cscore_files_become_memorization_and_must_match_the_labels(tmp_path):
    labels = torch.tensor([0, 1, 1, 2])
    np.savez(tmp_path / "c.npz", labels=labels.numpy(), scores=np.array([0.9, 0.2, 0.5, 1.0]))
    assert torch.allclose(memorization_from_cscores(tmp_path / "c.npz", labels), torch.tensor([0.1, 0.8, 0.5, 0.0]))
    with pytest.raises(ValueError, match="do not match"):
        memorization_from_cscores(tmp_path / "c.npz", torch.tensor([0, 1, 2, 2]))
    np.savez(tmp_path / "bad.npz", labels=labels.numpy())
    with pytest.raises(ValueError, match="scores"):
        memorization_from_cscores(tmp_path / "bad.npz", labels)


@pytest.mark.e2e
def test_a_missing_cscore_file_stops_run_before_any_job_but_not_plan(tmp_path, capsys):
    from orchestrator.cli import main

    sweep = tiny_quickstart(
        tmp_path / "s.yaml",
        memorization__scores_file=str(tmp_path / "absent.npz"),
        tracking__artifact_location=str(tmp_path / "a"),
    )
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["plan", str(sweep), "--tracking-uri", uri]) == 0
    assert main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(tmp_path / "s.json")]) == 2
    assert "memorization.scores_file: no such file" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_canaries_are_extra_candidates_with_wrong_labels_forgotten_with_the_forget_set():
    labels = torch.arange(200) % 4
    fs = select_forget_set(labels, ForgetConfig(target_class=2, fraction=0.2, canary_fraction=0.1), num_classes=4)
    assert len(fs.forget) == 10 and len(fs.canaries) == 5
    assert set(fs.canaries.tolist()).isdisjoint(fs.forget.tolist()) and set(fs.canaries.tolist()).isdisjoint(
        fs.retain.tolist()
    )
    assert (labels[fs.canaries] == 2).all() and (fs.canary_labels != 2).all()
    trained = fs.training_labels(labels)
    assert torch.equal(trained[fs.canaries], fs.canary_labels) and torch.equal(trained[fs.retain], labels[fs.retain])
    assert len(fs.unlearn) == 15 and len(fs.retain) == 185


def test_canaries_make_the_original_depend_on_the_forget_set(tmp_path):
    plain = build_dag(load_spec(tiny_quickstart(tmp_path / "a.yaml")))
    with_canaries = build_dag(load_spec(tiny_quickstart(tmp_path / "b.yaml", forget__canary_fraction=0.05)))
    assert (
        not plain.controls[43].original.model.reads_forget_set
        and with_canaries.controls[43].original.model.reads_forget_set
    )


def test_bf16_falls_back_to_fp32_on_a_cpu_and_autocast_keeps_outputs_float32():
    assert effective_precision(SpeedConfig(precision="bf16"), torch.device("cpu")) == "fp32"
    model = build_model("cnn1d", CNN1DConfig(channels=[4, 8], hidden=8), (1, 12), 3, seed=0)
    model.autocast_dtype = torch.bfloat16  # what prepare_model sets on a bf16-capable GPU; CPU autocast runs it too
    logits, hidden = model(torch.randn(5, 1, 12), return_hidden=True)
    assert logits.dtype == torch.float32 and all(h.dtype == torch.float32 for h in hidden)


def test_channels_last_keeps_values_and_state_dict_keys():
    from workloads.models.resnet import ResNetConfig

    model = build_model("resnet18", ResNetConfig(width=8), (3, 32, 32), 10, seed=0).eval()
    x = torch.rand(4, 3, 32, 32)
    expected, keys = model(x), set(model.state_dict())
    prepare_model(model, SpeedConfig(channels_last=True), torch.device("cpu"))
    fast_x = prepare_images(x, SpeedConfig(channels_last=True))
    assert fast_x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(fast_x), expected, atol=1e-5) and set(model.state_dict()) == keys


@pytest.mark.e2e
def test_a_sweep_with_canaries_reports_how_much_canary_memorisation_is_left(tmp_path):
    import json

    from orchestrator.cli import main

    sweep = tiny_quickstart(
        tmp_path / "s.yaml",
        forget__canary_fraction=0.02,
        train__epochs=30,
        methods=[{"name": "neggrad_plus", "hparams": {"epochs": 2, "lr": 1e-2}}],
        tracking__artifact_location=str(tmp_path / "a"),
    )
    assert (
        main(
            [
                "run",
                str(sweep),
                "--tracking-uri",
                f"sqlite:///{tmp_path / 'm.db'}",
                "--summary",
                str(tmp_path / "s.json"),
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "s.json").read_text())
    original, retrain, unlearned = summary["original"], summary["retrain"], summary["results"][0]["unlearned"]
    assert (
        original["canary_acc"] > retrain["canary_acc"]
    )  # the original memorised the wrong labels; the retrain never saw them
    assert unlearned["canary_acc"] < original["canary_acc"]  # and unlearning forgot some of them


STUDY = REPO / "configs" / "sweeps" / "cifar10_resnet18_study.yaml"


@pytest.mark.e2e
def test_where_the_data_lives_is_not_part_of_any_key(tmp_path):
    """The same CIFAR files in two folders (a laptop's, a cluster's), fetched or not, checked or not: the same keys.
    What the data is (its augmentation here) still is."""
    from orchestrator.execute import RunState
    from orchestrator.plan import plan_sweep
    from tests.test_study_smoke import write_tiny_cifar10

    for folder in ("laptop", "cluster"):
        write_tiny_cifar10(tmp_path / folder)
    tracker = Tracker(f"sqlite:///{tmp_path / 'm.db'}", "unlearn-sweep", str(tmp_path / "a"))

    def original_key(*overrides):
        state = RunState(
            plan_sweep(load_spec(STUDY, ["smoke", "dataset.args.verify=false", *overrides])), tracker.artifacts
        )
        return state.resolve_key(state.plan.dag.controls[state.plan.spec.seeds[0]].original.model)

    laptop = original_key(f"dataset.args.root={tmp_path / 'laptop'}")
    assert original_key(f"dataset.args.root={tmp_path / 'cluster'}", "dataset.args.download=true") == laptop
    assert original_key(f"dataset.args.root={tmp_path / 'cluster'}", "dataset.args.crop_padding=2") != laptop
