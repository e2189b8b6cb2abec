"""Worst-case forget sets (workloads/selection.py, the `select_forget` node): the upper level's projected step and the
reference's bisection on fixed numbers, the lower level's weighted sign-SGD fine-tuning, the bi-level search on a
tiny model (the weights move to the examples unlearning fails on; budget and seed honoured), the DAG (one selection
per original, upstream of its retrained control and every node that reads its forget set; its key follows the
original, the lower level, the budget and the seed, not the methods), the sweep checks, and a tiny real sweep whose
selection a second sweep with other methods finds in the store."""

import dataclasses
import json

import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from orchestrator.cli import main
from orchestrator.plan import build_dag, node_identity
from orchestrator.spec import SpecError, load_spec
from orchestrator.spec.selection import worst_case_config
from tests.conftest import REPO, tiny_quickstart
from workloads.forget import ForgetConfig, candidates_of, select_forget_set
from workloads.selection import (
    LOWER_LEVELS,
    WorstCaseConfig,
    lower_level,
    project_to_budget,
    select_worst_case,
    top_selection,
    upper_step,
    weighted_finetune,
)
from workloads.train import generator_for

CPU_SWEEP = REPO / "configs" / "sweeps" / "worst_case_cpu.yaml"
CIFAR_SWEEP = REPO / "configs" / "sweeps" / "worst_case_cifar10.yaml"


def config(**changes) -> WorstCaseConfig:
    return dataclasses.replace(worst_case_config({}), **changes)


# -- the upper level -------------------------------------------------------------------------------------------------


def test_the_projection_meets_the_budget_inside_the_box_and_keeps_the_order():
    a = torch.tensor([1.3, 0.9, 0.2, -0.4, 0.7, 0.05], dtype=torch.float64)
    w = project_to_budget(a, 2.0)
    assert w.sum().item() == pytest.approx(2.0, abs=1e-4)
    assert bool(((w >= 0) & (w <= 1)).all())
    assert all(w[i] >= w[j] for i in range(6) for j in range(6) if a[i] > a[j])  # a shift, then a clamp
    assert w[0] == 1 and w[3] == 0
    shift = (a - w)[(w > 0) & (w < 1)]  # one mu for every unclamped entry
    assert torch.allclose(shift, shift[0].expand_as(shift))


def test_a_binary_selection_of_the_budget_is_its_own_projection():
    a = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(project_to_budget(a, 2.0), a, atol=1e-5)


def test_the_upper_step_moves_weight_to_the_examples_unlearning_left_fitted():
    """Selected examples the unlearned model fails on (high loss: forgotten) lose weight; unselected ones it still
    fits (low loss: unlearning would fail on them) gain it, and a step long enough swaps them in."""
    w = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    losses = torch.tensor([5.0, 0.1, 0.0, 3.0])  # selected: forgotten, kept; unselected: fitted, not fitted
    small = upper_step(w, losses, budget=2, w_lr=0.01, gamma=0.0)
    assert small[0] < small[1] and small[2] > small[3]
    assert small.sum().item() == pytest.approx(2.0, abs=1e-4)
    assert top_selection(small, 2).tolist() == [1.0, 1.0, 0.0, 0.0]  # the reference's step leaves the top-2 alone
    large = upper_step(w, losses, budget=2, w_lr=1.0, gamma=0.0)
    assert top_selection(large, 2).tolist() == [0.0, 1.0, 1.0, 0.0]  # the fitted unselected one is in, 0 is out


def test_gamma_is_an_l2_penalty_on_the_weights():
    w = torch.tensor([0.9, 0.6, 0.3, 0.2], dtype=torch.float64)
    losses = torch.zeros(4)
    plain, penalised = upper_step(w, losses, 2, 0.1, 0.0), upper_step(w, losses, 2, 0.1, 1.0)
    assert torch.allclose(plain, w, atol=1e-4)  # no loss, no penalty: w is already on the budget
    assert penalised.max() - penalised.min() < w.max() - w.min()  # the penalty pulls the weights together


# -- the lower level -------------------------------------------------------------------------------------------------


def test_weighted_finetuning_leaves_out_selected_examples_in_proportion_to_their_weight():
    model = nn.Linear(3, 2)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    ce = nn.functional.cross_entropy(model(x), y, reduction="none")
    w = torch.tensor([1.0, 0.0, 0.5, 0.25])
    assert weighted_finetune(model, x, y, w).item() == pytest.approx((ce * (1 - w)).sum().item(), rel=1e-6)
    assert weighted_finetune(model, x, y, torch.ones(4)).item() == 0.0
    assert set(LOWER_LEVELS.names()) == {"finetune"}


def test_the_lower_level_steps_every_parameter_by_the_sign_of_its_gradient():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    cfg = config(lower_epochs=1, batch_size=8, lower_lr=0.01)
    lower_level(model, x, y, torch.zeros(8, dtype=torch.float64), cfg, generator_for(0), None)
    moved = torch.cat([(p.detach() - b).abs().flatten() for p, b in zip(model.parameters(), before)])
    assert torch.allclose(moved, torch.full_like(moved, 0.01))  # one step: each entry by exactly the step size


# -- the search on a tiny model --------------------------------------------------------------------------------------


def noisy_clusters(n=240, noisy=24, seed=0):
    """Two Gaussian clusters; the first `noisy` examples carry the wrong label (atypical, memorised)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) * 0.7 + torch.stack([y * 2.0 - 1, y * 2.0 - 1], 1)
    y = y.clone()
    y[:noisy] = 1 - y[:noisy]
    return x, y


def fitted_mlp(x, y, seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))
    optimizer = torch.optim.Adam(model.parameters(), 2e-2)
    for _ in range(300):  # memorises the mislabelled examples
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def search(x, y, state, seed=0, target_class=None, **changes):
    forget = ForgetConfig(target_class=target_class, fraction=0.2, seed=seed)
    start = select_forget_set(y, forget, None, 2).forget
    fresh = lambda: _loaded(state)
    cfg = config(batch_size=64, augment=False, **changes)
    found = select_worst_case(fresh, x, y, candidates_of(y, target_class), start, cfg, generator_for(seed))
    return found, start


def _loaded(state):
    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))
    model.load_state_dict(state)
    return model


@pytest.fixture(scope="module")
def tiny():
    x, y = noisy_clusters()
    return x, y, fitted_mlp(x, y).state_dict()


def test_the_search_moves_the_selection_to_the_examples_unlearning_fails_on(tiny):
    """Fine-tuning on the rest forgets the mislabelled examples (nothing else supports them) and keeps the typical
    ones (their neighbours do): the worst-case set drops the former for the latter, while the random start holds
    them in proportion."""
    x, y, state = tiny
    found, start = search(x, y, state, select_epochs=4, lower_epochs=5, lower_lr=3e-3, w_lr=0.5)
    chosen = top_selection(found.scores, len(start)).bool()
    noisy = torch.zeros(len(y), dtype=torch.bool)
    noisy[:24] = True
    assert noisy[start].float().mean() > 0.05  # the random start holds some
    assert noisy[chosen].float().mean() < noisy[start].float().mean() / 2
    assert found.epochs[-1]["selected_loss"] < found.epochs[-1]["unselected_loss"]
    assert sum(e["changed"] for e in found.epochs) > 0


def test_the_budget_candidates_and_seed_are_honoured(tiny):
    x, y, state = tiny
    found, start = search(x, y, state, seed=1, target_class=1, select_epochs=2, lower_epochs=1, w_lr=0.5)
    again, _ = search(x, y, state, seed=1, target_class=1, select_epochs=2, lower_epochs=1, w_lr=0.5)
    other, other_start = search(x, y, state, seed=2, target_class=1, select_epochs=2, lower_epochs=1, w_lr=0.5)
    assert torch.equal(found.scores, again.scores)  # the seed fixes the start, the batches and the augmentation
    assert not torch.equal(start, other_start) and not torch.equal(found.scores, other.scores)
    assert found.scores.sum().item() == pytest.approx(len(start), abs=1e-3)  # the budget: the forget set's size
    assert bool((found.scores[y != 1] == 0).all())  # only the target class's examples carry weight
    chosen = select_forget_set(
        y, ForgetConfig(target_class=1, fraction=0.2, criterion="worst_case", seed=1), found.scores
    )
    assert len(chosen.forget) == len(start) and bool((y[chosen.forget] == 1).all())
    assert set(chosen.forget.tolist()) == set(top_selection(found.scores, len(start)).nonzero().flatten().tolist())


# -- the DAG and its keys --------------------------------------------------------------------------------------------


def keyed(dag, *kinds):
    """Keys of the nodes that read no forget set (computable before anything runs), in topological order."""
    for node in dag:
        if node.kind in kinds or node.kind == "train_original":
            node.key = node_identity(node.kind, node.config, node.input_keys, None).key
    return dag


def test_one_selection_per_original_upstream_of_everything_that_reads_its_forget_set(tmp_path):
    dag = build_dag(load_spec(tiny_quickstart(tmp_path / "s.yaml", seeds=[43, 44], forget__criterion="worst_case")))
    selections = [n for n in dag if n.kind == "select_forget"]
    assert len(selections) == 2 and dag.memorization is None
    for seed, controls in dag.controls.items():
        selection = controls.forget_scores
        assert selection.inputs == {"original": controls.original.model} and selection.config.budget.seed == 0
        readers = [n for n in dag if n.inputs.get("forget_scores") is selection]
        assert controls.retrain.model in readers
        assert all(
            n.inputs["forget_scores"] is selection for n in dag if n.reads_forget_set and n.about["seed"] == seed
        )
    assert {n.kind for n in dag if n.reads_forget_set} == {
        "train_retrain",
        "unlearn",
        "evaluate",
        "relearn",
        "interpolate",
    }


def test_the_selection_key_follows_the_original_the_lower_level_the_budget_and_the_seed_not_the_methods(tmp_path):
    base = {"forget__criterion": "worst_case"}

    def key(**changes):
        spec = load_spec(tiny_quickstart(tmp_path / "s.yaml", **base, **changes))
        return next(n.key for n in keyed(build_dag(spec), "select_forget") if n.kind == "select_forget")

    first = key()
    assert key(methods=[{"name": "l2ul_naive"}], relearn__k=[0]) == first  # other methods and attacks: shared
    assert key(forget__attack_pool_fraction=0.4) == first  # the attack pool does not change what is selected
    changed = [
        key(worst_case={"lower_epochs": 3}),
        key(worst_case={"lower_lr": 1e-2}),
        key(forget__fraction=0.2),
        key(forget__seed=1),
        key(forget__target_class=3),
        key(train__epochs=5),  # another original
    ]
    assert len({first, *changed}) == 1 + len(changed)


def test_every_criterion_shares_the_original_and_only_worst_case_selects(tmp_path):
    dags = {
        c: keyed(build_dag(load_spec(tiny_quickstart(tmp_path / f"{c}.yaml", forget__criterion=c))), "memorization")
        for c in ("random", "high_mem", "worst_case")
    }
    originals = {c: dag.controls[43].original.model.key for c, dag in dags.items()}
    assert len(set(originals.values())) == 1
    assert [c for c, dag in dags.items() if any(n.kind == "select_forget" for n in dag)] == ["worst_case"]
    assert [c for c, dag in dags.items() if dag.memorization is not None] == ["high_mem"]


def test_the_shipped_comparison_has_a_profile_per_criterion():
    for profile, criterion in (("random", "random"), ("high_mem", "high_mem"), ("worst_case", "worst_case")):
        spec = load_spec(CPU_SWEEP, [profile])
        assert spec.forget.criterion == criterion and len(spec.seeds) >= 2
        assert {"l2ul", "finetune"} <= {m.name for m in spec.methods} and len(spec.methods) >= 3
    reference = worst_case_config(load_spec(CPU_SWEEP, ["reference_selection"]).worst_case)
    assert reference == worst_case_config({})  # the reference's selection settings, as the defaults file has them


def test_the_cifar10_comparison_selects_at_the_reference_settings_from_the_studys_originals():
    """OPTML-Group/Unlearn-WorstCase data-wise/README.md: ResNet-18 on CIFAR-10, 4,500 examples from every class,
    w_FT for 2 steps at theta_lr 1e-3, 2 selection epochs; the originals are the study's."""
    spec = load_spec(CIFAR_SWEEP)
    assert (spec.dataset.name, spec.model.name, spec.forget.criterion) == ("cifar10", "resnet18", "worst_case")
    assert spec.forget.target_class is None and round(spec.forget.fraction * 50_000) == 4500
    selection = worst_case_config(spec.worst_case)
    assert (selection.lower, selection.lower_epochs, selection.lower_lr, selection.select_epochs) == (
        "finetune",
        2,
        1e-3,
        2,
    )
    assert (selection.batch_size, selection.w_lr, selection.gamma, selection.binarize_every) == (256, 0.01, 0.0, 20)
    assert spec.train == load_spec(REPO / "configs" / "sweeps" / "cifar10_resnet18_study.yaml").train
    assert {"l2ul", "finetune", "neggrad_plus"} <= {m.name for m in spec.methods}
    dag = build_dag(spec)
    assert [n.kind for n in dag].count("select_forget") == 1 and len(dag.nodes) == 59
    for profile in ("random", "high_mem"):
        assert load_spec(CIFAR_SWEEP, [profile]).forget.criterion == profile


# -- bad input -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["forget.criterion=worst_case", "forget.canary_fraction=0.1"], "forget.canary_fraction: canaries"),
        (["worst_case.lower=gradient_ascent"], "worst_case.lower: unknown lower-level method"),
        (["worst_case.upper_mode=sideways"], "worst_case.upper_mode: must be one of train, eval"),
        (["worst_case.select_epochs=0"], "worst_case.select_epochs: must be positive"),
        (["worst_case.stepsize=1"], "worst_case.stepsize"),
    ],
)
def test_bad_selection_settings_fail_before_any_job_naming_the_key(tmp_path, overrides, message):
    with pytest.raises(SpecError, match=message):
        load_spec(tiny_quickstart(tmp_path / "s.yaml"), overrides)


# -- a tiny real sweep -----------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_second_sweep_with_other_methods_reuses_the_selection_and_its_forget_set(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # table cells unwrapped
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    changes = {
        "forget__criterion": "worst_case",
        "worst_case": {"select_epochs": 2, "lower_epochs": 1, "w_lr": 0.5},
        "relearn__k": [0],
        "lmc__stride": 0.5,
        "tracking__artifact_location": str(tmp_path / "artifacts"),
        "dataset__args__num_samples": 600,
        "train__epochs": 2,
    }
    first = tiny_quickstart(
        tmp_path / "first.yaml", methods=[{"name": "finetune", "hparams": {"epochs": 0.5}}], **changes
    )
    l2ul = {
        "name": "l2ul",
        "hparams": {"epochs": 0.5, "pgd_iter": 3, "num_adv_images": 2, "clip_min": None, "clip_max": None},
    }
    second = tiny_quickstart(tmp_path / "second.yaml", methods=[l2ul], **changes)
    summaries = []
    for sweep in (first, second):
        out = tmp_path / f"{sweep.stem}.json"
        assert main(["run", str(sweep), "--tracking-uri", uri, "--summary", str(out), "--threads", "2"]) == 0
        summaries.append(json.loads(out.read_text()))
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("unlearn-sweep")
    runs = lambda kind: client.search_runs([experiment.experiment_id], f"tags.node_kind = '{kind}'")
    assert len(runs("select_forget")) == 1 and len(runs("train_retrain")) == 1  # computed once, found by the second
    selection = summaries[0]["forget"]["selections"][0]
    assert summaries[1]["forget"]["selections"][0]["run_id"] == selection["run_id"]
    # 10 % of the 480 training signals, drawn from every class
    assert (selection["candidates"], selection["budget"]) == (480, 48)
    assert 0 <= selection["start_overlap"] <= 1 and len(selection["epochs"]) == 2
    assert summaries[1]["nodes"]["cached"] >= 4  # original, selection, retrained control, its evaluation
    assert summaries[1]["results"][0]["unlearned"]["retain_acc"] > 0
    assert summaries[1]["retrain"]["heldout_forget_acc"] == summaries[0]["retrain"]["heldout_forget_acc"]
    # The two sweeps side by side through the CLI: each labelled by its forget set, every model a row per sweep.
    files = [str(tmp_path / f"{sweep.stem}.json") for sweep in (first, second)]
    capsys.readouterr()
    assert main(["side-by-side", *files]) == 0
    shown = capsys.readouterr().out
    assert "worst_case (kept" in shown and "finetune" in shown and "l2ul" in shown and "retrain (control)" in shown
    assert main(["side-by-side", files[0]]) == 2  # one sweep is not a comparison: one line, exit code 2
