"""REM (workloads/methods/rem.py) on a tiny model with example-tied dropout: its masks
(workloads/models/tied_dropout.py), each phase (the flush stops at the threshold, the discovered examples share one mask
while repairing, the round kept is the one the selection rule ranks first, the added capacity plays no part at
inference), and the losses of the REM study's other baselines on fixed tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from orchestrator.spec import checked, method_defaults
from workloads.methods import METHODS, UnlearnContext, frozen_copy, unlearn
from workloads.methods.bad_teacher import distillation
from workloads.methods.npo import npo_loss
from workloads.methods.potion import dampen_top_share
from workloads.methods.rem import accuracy, round_score
from workloads.methods.salun import saliency_mask
from workloads.models import CNN1DConfig, build_model
from workloads.models.tied_dropout import (
    SHARED_EXAMPLE,
    ExampleTiedDropout,
    TiedDropoutOptions,
    memorisation_masks,
    spare_channels,
    tied_layers,
    tied_to,
)


# -- example-tied dropout ---------------------------------------------------------------------------------------------
def layer(channels=20, generalisation=0.5, memorisation=0.4):
    return ExampleTiedDropout(channels, TiedDropoutOptions(generalisation, memorisation), layer=0)


def test_in_train_mode_each_example_keeps_its_own_memorisation_channels_and_in_eval_mode_none():
    etd, h, ids = layer(), torch.ones(6, 20), torch.arange(6)
    etd.train()
    etd.ids = ids
    trained = etd(h)
    assert (trained[:, :10] == 1).all()  # the generalisation half is always on
    assert (
        trained[:, 10:].sum() > 0 and len({tuple(row.tolist()) for row in trained[:, 10:]}) > 1
    )  # masks differ by example
    etd.eval()
    tested = etd(h)
    assert (tested[:, 10:] == 0).all() and torch.allclose(tested[:, :10], torch.full((6, 10), (10 + 0.4 * 10) / 10))
    etd.train()
    etd.ids = None  # train mode without indices is drop mode too (REM's flush)
    assert torch.equal(etd(h), tested)


def test_an_examples_mask_is_the_same_in_every_epoch_whatever_its_batch():
    etd, h = layer(), torch.ones(8, 20)
    etd.train()
    masks = []
    for order in (torch.arange(8), torch.tensor([5, 3, 7, 0, 1, 6, 2, 4])):  # two epochs, shuffled differently
        etd.ids = order
        out = etd(h)
        masks.append({int(i): tuple(row[10:].tolist()) for i, row in zip(order, out)})
    assert masks[0] == masks[1]
    share = memorisation_masks(torch.arange(5000), 10, 0.4, seed=0).float().mean().item()
    assert abs(share - 0.4) < 0.02  # about `memorisation` of the spare channels per example


# -- REM's phases -----------------------------------------------------------------------------------------------------
def memorised_context(seed=0):
    """A tiny CNN with half its channels spare that has learnt 8 random 'discovered' examples in drop mode (forget
    accuracy 1) beside 32 retain examples."""
    torch.manual_seed(seed)
    model = build_model("cnn1d", CNN1DConfig(channels=[8, 16], hidden=32, generalisation=0.5), (1, 12), 3, seed=seed)
    x, y = torch.randn(40, 1, 12), torch.randint(0, 3, (40,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert accuracy(model, x[:8], y[:8]) == 1.0
    return model, UnlearnContext(
        frozen_copy(model), x[8:], y[8:], x[:8], y[:8], num_classes=3, train_size=40, seed=seed
    )


def rem(name="rem", **changes):
    values = {**method_defaults(name), "batch_size": 8, "lr": 0.05, "optimizer": "sgd", **changes}
    return METHODS.get(name)(checked(METHODS.get(name).Config, values, name))


def test_the_flush_stops_at_the_first_pass_that_brings_forget_accuracy_to_the_threshold():
    model, ctx = memorised_context()
    unlearn(rem("rem_npo_only", threshold=0.5, max_flush_epochs=200), model, ctx, max_steps=500)
    flush = ctx.report["rem"]["rounds"][0]
    assert flush["forget_acc"] <= 0.5 and 0 < flush["flush_steps"] < 200  # stopped early, not at the cap
    # one pass (one batch of the 8 discovered examples) fewer leaves it above the threshold
    model, ctx = memorised_context()
    unlearn(rem("rem_npo_only", threshold=0.5, max_flush_epochs=flush["flush_steps"] - 1), model, ctx, max_steps=500)
    assert ctx.report["rem"]["rounds"][0]["forget_acc"] > 0.5
    model, ctx = memorised_context()
    unlearn(rem("rem_npo_only", threshold=1.0), model, ctx, max_steps=50)
    assert ctx.report["rem"]["rounds"][0]["flush_steps"] == 0  # already at or below the threshold: no step


def test_repair_gives_every_discovered_example_one_shared_mask_and_every_retain_example_its_own():
    model, ctx = memorised_context()
    seen = []
    first = tied_layers(model)[0]
    original_forward = first.forward

    def record(h):
        if first.ids is not None:
            seen.append((first.ids.clone(), first.share_override))
        return original_forward(h)

    first.forward = record
    method = rem(threshold=1.0)  # no flush step: the budget is one repair pass over the 40 examples
    unlearn(method, model, ctx, max_steps=5)
    ids = torch.cat([i for i, _ in seen])
    assert sorted(ids.tolist()) == [SHARED_EXAMPLE] * 8 + list(range(32))
    assert {share for _, share in seen} == {method.cfg.mask_share}
    masks = memorisation_masks(ids, first.spare, method.cfg.mask_share, first.seed)
    shared = masks[ids == SHARED_EXAMPLE]
    assert (shared == shared[0]).all()  # one mask for all discovered examples
    assert len({tuple(m.tolist()) for m in masks[ids != SHARED_EXAMPLE]}) > 1


def test_the_selection_rule_and_the_round_rem_keeps():
    assert round_score(0.9, 0.1, 0.2) == pytest.approx(0.9 * 0.8)  # forget accuracy floored at the threshold
    assert round_score(0.9, 0.5, 0.2) == pytest.approx(0.45)
    model, ctx = memorised_context()
    unlearn(rem(threshold=0.3, max_flush_epochs=3), model, ctx, max_steps=60)
    rounds = ctx.report["rem"]["rounds"]
    assert len(rounds) >= 3 and rounds[-1]["steps"] == 60
    best = max(rounds, key=lambda r: r["score"])
    assert ctx.report["rem"]["chosen"] == best["round"]
    assert all(r["score"] == pytest.approx(round_score(r["retain_acc"], r["forget_acc"], 0.3)) for r in rounds)
    # the model handed back is that round's
    assert accuracy(model, ctx.retain_x, ctx.retain_y) == pytest.approx(best["retain_acc"])
    assert accuracy(model, ctx.forget_x, ctx.forget_y) == pytest.approx(best["forget_acc"])


def test_the_added_capacity_plays_no_part_at_inference():
    model, ctx = memorised_context()
    unlearn(rem(threshold=0.3, max_flush_epochs=3), model, ctx, max_steps=20)
    assert spare_channels(model) > 0
    model.eval()
    x = torch.cat([ctx.retain_x, ctx.forget_x])
    with torch.no_grad():
        plain = model(x)
        with tied_to(model, torch.arange(len(x)), share=1.0):  # masks asked for: eval mode ignores them
            assert torch.equal(model(x), plain)
        # scramble what feeds the spare channels of the last tied layer (the hidden units after `fixed`)
        hidden = model.head[1]
        fixed = tied_layers(model)[-1].fixed
        hidden.weight[fixed:] = torch.randn_like(hidden.weight[fixed:]) * 10
        hidden.bias[fixed:] = 5.0
        assert torch.equal(model(x), plain)


def test_rem_refuses_a_model_without_spare_channels():
    torch.manual_seed(0)
    model = build_model("cnn1d", CNN1DConfig(channels=[4, 8], hidden=16), (1, 12), 3, seed=0)
    x, y = torch.randn(16, 1, 12), torch.randint(0, 3, (16,))
    ctx = UnlearnContext(frozen_copy(model), x[4:], y[4:], x[:4], y[:4], num_classes=3, train_size=16, seed=0)
    with pytest.raises(ValueError, match="spare channels"):
        unlearn(rem(), model, ctx, max_steps=2)


# -- the other baselines' losses on fixed tensors ---------------------------------------------------------------------
LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
REFERENCE = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
Y = torch.tensor([0, 1])


def ce(logits, y):
    return -math.log(math.exp(logits[y]) / sum(math.exp(v) for v in logits))


def test_npo_loss_by_hand():
    for beta in (1.0, 0.5):
        expected = (
            sum(
                -(2 / beta) * math.log(1 / (1 + math.exp(-beta * (ce(z.tolist(), y) - ce(r.tolist(), y)))))
                for z, r, y in zip(LOGITS, REFERENCE, Y.tolist())
            )
            / 2
        )
        assert npo_loss(LOGITS, Y, REFERENCE, beta).item() == pytest.approx(expected, rel=1e-5)
    assert npo_loss(REFERENCE, Y, REFERENCE, 1.0).item() == pytest.approx(2 * math.log(2), rel=1e-6)  # no gap: 2 log 2


def test_bad_teacher_distillation_by_hand():
    def softmax(v, t):
        e = [math.exp(a / t) for a in v]
        return [a / sum(e) for a in e]

    for t in (1.0, 4.0):
        expected = (
            sum(
                sum(p * math.log(p / q) for p, q in zip(softmax(r, t), softmax(s, t)))
                for s, r in zip(LOGITS.tolist(), REFERENCE.tolist())
            )
            / 2
        )
        assert distillation(LOGITS, REFERENCE, t).item() == pytest.approx(expected, rel=1e-5)


def test_salun_keeps_the_weights_with_the_largest_forget_gradient():
    model = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0], [0.5, 0.0], [0.0, 2.0]]))
    x, y = torch.tensor([[1.0, 3.0], [-2.0, 0.5]]), torch.tensor([0, 2])
    grad = torch.autograd.grad(F.cross_entropy(model(x), y), model.weight)[0]
    (mask,) = saliency_mask(model, x, y, share=0.5, batch_size=2)
    top = grad.abs().flatten().topk(3).indices
    assert mask.sum() == 3 and set(mask.flatten().nonzero().flatten().tolist()) == set(top.tolist())


def test_potion_dampens_the_share_with_the_highest_forget_to_full_importance():
    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    forget, full = [torch.tensor([[4.0, 1.0, 0.5]])], [torch.tensor([[1.0, 1.0, 1.0]])]
    assert dampen_top_share(model, forget, full, share=1 / 3, dampening=1.0, eps=0.0) == 1
    assert model.weight.tolist() == [[0.25, 1.0, 1.0]]  # theta *= min(lambda * F_D / F_f, 1) on the top third only
