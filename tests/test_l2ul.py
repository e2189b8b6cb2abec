"""Instance-wise unlearning (workloads/methods/l2ul.py) on fixed tensors: the forget and adversarial terms, the MAS
importances (one batch, and two with the reference's carried-over gradients or MAS's own), their normalisation and
penalty, the targeted L2 PGD and its labels; then the method itself: it runs with no retain batch (the unlearn node
hands it none), its variants switch the regularisers off, the penalty holds the weights, and it stops once the
forget instances are misclassified."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.test_methods import tiny_config, tiny_context
from workloads.data import Dataset
from workloads.forget import ForgetConfig, select_forget_set
from workloads.methods import METHODS, unlearn
from workloads.methods.base import Batches
from workloads.methods.l2ul import (
    attack_labels,
    importance_penalty,
    in_order,
    l2ul_loss,
    mas_gradients,
    normalised_importance,
    targeted_l2_pgd,
)
from workloads.nodes import RunContext
from workloads.nodes.unlearn import unlearn_context

FAST = {"pgd_iter": 3, "num_adv_images": 2, "clip_min": None, "clip_max": None}


def test_the_forget_term_pushes_away_and_the_adversarial_term_holds_each_by_its_share_of_rows():
    forget_logits, forget_y = torch.tensor([[2.0, 0.0], [0.5, 1.5]]), torch.tensor([0, 0])
    adv_logits, adv_y = torch.tensor([[0.0, 3.0], [1.0, 0.0], [0.2, 0.1]]), torch.tensor([1, 1, 0])
    forget_ce, adv_ce = F.cross_entropy(forget_logits, forget_y), F.cross_entropy(adv_logits, adv_y)
    expected = -forget_ce * 2 / 5 + adv_ce * 3 / 5
    assert l2ul_loss(forget_logits, forget_y, adv_logits, adv_y).item() == pytest.approx(expected.item())
    relabelled = forget_ce * 2 / 5 + adv_ce * 3 / 5  # `relabel`: descend CE to the given labels
    assert l2ul_loss(forget_logits, forget_y, adv_logits, adv_y, away=False).item() == pytest.approx(relabelled.item())
    assert l2ul_loss(forget_logits, forget_y).item() == pytest.approx(-forget_ce.item())  # no adversarial examples


def test_importances_are_normalised_per_tensor_and_inverted():
    found = normalised_importance({"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([4.0, 4.0])})
    assert found["a"].tolist() == [1.0, 0.5, 0.0]  # the parameter the forget instances need most is free to move
    assert found["b"].tolist() == [1.0, 1.0]  # all equal (the reference divides by zero): held fully


def test_the_penalty_is_half_the_importance_weighted_squared_distance_to_the_start():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.bias.fill_(0.5)
    start = {"weight": torch.tensor([[0.0, 0.0]]), "bias": torch.tensor([0.0])}
    importance = {"weight": torch.tensor([[1.0, 0.5]]), "bias": torch.tensor([2.0])}
    assert importance_penalty(model, start, importance).item() == pytest.approx((1 * 1 + 0.5 * 4 + 2 * 0.25) / 2)


def mas_by_hand(weight, rows):
    """d/dW of mean_i ||W x_i||_2 for a linear map: mean_i (W x_i / ||W x_i||) x_i^T."""
    out = rows @ weight.T
    return ((out / out.norm(dim=1, keepdim=True)).unsqueeze(2) * rows.unsqueeze(1)).mean(0)


def test_mas_importances_by_hand_over_one_and_two_batches():
    model = nn.Linear(2, 2, bias=False)
    weight = torch.tensor([[1.0, -2.0], [0.5, 1.0]])
    with torch.no_grad():
        model.weight.copy_(weight)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    one = mas_gradients(model, x, batch_size=4, accumulated=True)["weight"]  # 3 // 4 + 1 = 1 batch of 4 rows' worth
    assert torch.allclose(one, mas_by_hand(weight, x).abs() * 3 / 4)
    g1, g2 = mas_by_hand(weight, x[:2]), mas_by_hand(weight, x[2:])  # batches of 2: 3 // 2 + 1 = 2 batches
    carried = mas_gradients(model, x, batch_size=2, accumulated=True)["weight"]
    assert torch.allclose(carried, (g1.abs() * 2 + (g1 + g2).abs() * 1) / 4)  # the reference never zeroes grads
    fresh = mas_gradients(model, x, batch_size=2, accumulated=False)["weight"]
    assert torch.allclose(fresh, (g1.abs() * 2 + g2.abs() * 1) / 4)


def test_targeted_pgd_stays_in_the_ball_and_the_domain_and_reaches_its_target():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x = torch.rand(6, 4)
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    cfg = tiny_config("l2ul", pgd_eps=0.3, pgd_alpha=0.05, pgd_iter=20)
    near = targeted_l2_pgd(model, x, target, cfg, (0.0, 1.0), torch.Generator().manual_seed(0))
    assert bool(((near - x).norm(dim=1) <= 0.3 + 1e-5).all()) and bool(((near >= 0) & (near <= 1)).all())
    wide = dataclasses.replace(cfg, pgd_eps=50.0, pgd_alpha=1.0, pgd_iter=100)
    far = targeted_l2_pgd(_scaled(model), x, target, wide, (-50.0, 50.0), torch.Generator())
    assert _scaled(model)(far).argmax(1).tolist() == target.tolist()


def _scaled(model):
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.weight.mul_(5)
    return scaled


def test_attack_labels_follow_the_reference_rule_or_avoid_the_true_label():
    y = torch.tensor([5, 5, 5, 5, 1, 2, 3, 4] * 50)
    generator = torch.Generator().manual_seed(3)
    drawn = (torch.rand(len(y), generator=torch.Generator().manual_seed(3)) * 10).long()
    reference = attack_labels(y, 10, "reference", generator)
    assert torch.equal(reference, torch.where(drawn == y, torch.full_like(y, 5), drawn))
    assert bool((reference[y == 5] == 5).any())  # the fallback class can be the true one
    wrong = attack_labels(y, 10, "uniform_wrong", torch.Generator().manual_seed(3))
    assert not bool((wrong == y).any()) and wrong.min() >= 0 and wrong.max() < 10


def test_batches_come_in_the_rows_order_and_cycle():
    x, y = torch.arange(5.0).view(5, 1), torch.arange(5)
    batches = in_order(x, y, 2)
    assert [next(batches)[1].tolist() for _ in range(4)] == [[0, 1], [2, 3], [4], [0, 1]]


def tiny_run(name, **changes):
    model, ctx = tiny_context()
    ctx.retain_x, ctx.retain_y = ctx.retain_x[:0], ctx.retain_y[:0]  # what the unlearn node hands it
    before = copy.deepcopy(model.state_dict())
    curve = unlearn(METHODS.get(name)(tiny_config(name, **{**FAST, **changes})), model, ctx, max_steps=4)
    return model, ctx, before, curve


def test_the_unlearn_node_gives_a_method_that_uses_no_retain_set_none_and_the_loop_draws_none():
    labels = torch.arange(60) % 3
    data = Dataset(torch.randn(60, 1, 12), labels, torch.randn(9, 1, 12), torch.arange(9) % 3, 3)
    forget_set = select_forget_set(labels, ForgetConfig(target_class=None, fraction=0.2, seed=0))
    ctx = RunContext(torch.device("cpu"), data, forget_set)
    model, _ = tiny_context()
    l2ul, finetune = METHODS.get("l2ul")(tiny_config("l2ul", **FAST)), METHODS.get("finetune")(tiny_config("finetune"))
    given = unlearn_context(l2ul, ctx, model, 0)
    assert len(given.retain_y) == 0 and len(given.retain_ids) == 0 and len(given.forget_y) == 12
    assert len(unlearn_context(finetune, ctx, model, 0).retain_y) == 48
    assert not METHODS.get("l2ul").uses_retain_set and METHODS.get("finetune").uses_retain_set
    assert [n for n in METHODS.names() if not METHODS.get(n).uses_retain_set] == [
        "l2ul",
        "l2ul_adv",
        "l2ul_importance",
        "l2ul_naive",
    ]
    given.generator = torch.Generator()
    assert Batches(l2ul, given).retain is None


@pytest.mark.parametrize("name", ["l2ul", "l2ul_adv", "l2ul_importance", "l2ul_naive"])
def test_each_variant_unlearns_without_a_retain_batch_with_only_its_regularisers(name):
    model, ctx, before, curve = tiny_run(name)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    report = ctx.report["l2ul"]
    assert ("adversarial_examples" in report) == (name in ("l2ul", "l2ul_adv"))
    if "adversarial_examples" in report:
        assert report["adversarial_examples"] == 8 * 2  # two per forget instance


def test_the_importance_penalty_holds_the_weights():
    free, _, start, _ = tiny_run("l2ul_naive")
    held, _, _, _ = tiny_run("l2ul_importance", reg_lamb=50.0)
    moved = lambda m: sum((v.float() - start[k].float()).norm() ** 2 for k, v in m.state_dict().items()) ** 0.5
    assert moved(held) < moved(free)


def test_it_stops_once_the_forget_instances_are_misclassified_enough():
    _, ctx, _, curve = tiny_run("l2ul_naive", stop_at_forget_acc=1.0)
    assert ctx.report["l2ul"]["steps"] == 1 and curve[-1][0] == 1
