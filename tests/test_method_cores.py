"""Each unlearning method's core (its loss, weight edit or schedule) on tiny tensors, against values computed by hand
or by an independent formulation."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workloads.methods import UnlearnContext, frozen_copy, unlearn
from workloads.methods.circuit_breakers import coefficients, hidden_cosine, hidden_mse
from workloads.methods.l1_sparse import mean_abs
from workloads.methods.mode_connectivity import mixed_state
from workloads.methods.random_relabel import random_wrong_labels
from workloads.methods.retrain import reinitialise
from workloads.methods.scrub import kl_from_teacher, kl_from_uniform
from workloads.methods.ssd import SSD, SSDConfig, dampening, fisher_diagonal
from workloads.methods.tar import tamper_gradient
from workloads.methods.weight_dist_reg import rms_distance
from workloads.methods.weight_edits import add_gaussian_noise, attenuate, drop_entries
from workloads.models import CNN1DConfig, build_model


def test_circuit_breaker_coefficients_move_from_forgetting_to_retaining():
    assert coefficients(2.0, 0, 4) == (0.5, 1.5)
    assert coefficients(2.0, 1, 4) == (1.0, 1.0)
    assert coefficients(2.0, 3, 4) == (2.0, 0.0)  # the last step only retains
    c_r, c_u = coefficients(1.0, 6, 10)
    assert c_r == pytest.approx(0.7) and c_u == pytest.approx(0.3)


def test_circuit_breaker_terms_average_over_layers():
    h = [torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[1.0, 1.0], [-1.0, 0.0]])]
    ref = [torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])]
    assert hidden_mse(h, ref, [0, 1]) == pytest.approx((4 / 4 + (1 + 4) / 4) / 2)
    # layer 0: cos 1 and cos 0 (a zero vector); layer 1: cos 1/sqrt(2) and -1, the latter cut by the ReLU
    assert hidden_cosine(h, ref, [0, 1]) == pytest.approx(((1 + 0) / 2 + (2**-0.5 + 0) / 2) / 2)
    assert hidden_cosine(h, ref, [1]) == pytest.approx(2**-0.5 / 2)


def two_class_linear():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)  # equal logits: p = (1/2, 1/2), so the CE gradient is (p - onehot(y)) x^T
    return model


def test_fisher_diagonal_sums_squared_batch_gradients():
    model = two_class_linear()
    x, y = torch.tensor([[1.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1])
    # per example: [[-0.5, 0], [0.5, 0]] and [[1, 0], [-1, 0]]
    (per_example,) = fisher_diagonal(model, x, y, batch_size=1)
    assert torch.allclose(per_example, torch.tensor([[0.25 + 1.0, 0.0], [0.25 + 1.0, 0.0]]))
    (one_batch,) = fisher_diagonal(model, x, y, batch_size=2)  # the batch mean is [[0.25, 0], [-0.25, 0]]
    assert torch.allclose(one_batch, torch.tensor([[0.0625, 0.0], [0.0625, 0.0]]))


def test_ssd_beta_is_the_clamped_fisher_ratio():
    beta = dampening(torch.tensor([1.0, 4.0, 0.0, 3.0]), torch.tensor([2.0, 1.0, 0.0, 0.0]), eps=1e-6)
    assert torch.allclose(beta, torch.tensor([0.5, 1.0, 0.0, 1.0]))  # 3 / 1e-6 is clamped to 1; 0 / 1e-6 is 0


def test_ssd_zeroes_the_weights_only_the_forget_set_uses():
    model = two_class_linear()
    # retain examples live on input 0, forget examples on input 1:
    # F_r = [[.25, 0], [.25, 0]], F_f = [[0, .25], [0, .25]]
    ctx = UnlearnContext(
        frozen_copy(model),
        torch.tensor([[1.0, 0.0]]),
        torch.tensor([0]),
        torch.tensor([[0.0, 1.0]]),
        torch.tensor([1]),
        num_classes=2,
        train_size=2,
        seed=0,
    )
    SSD(SSDConfig(lr=1e-5, weight_decay=0.0, epochs=1, batch_size=1, eps=1e-6)).edit_weights(model, ctx)
    assert torch.equal(model.weight.detach(), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))


def test_weight_attenuation_scales_every_entry():
    params = [torch.tensor([1.0, -2.0]), torch.tensor([[4.0]])]
    attenuate(params, 0.5)
    assert torch.equal(params[0], torch.tensor([0.5, -1.0])) and torch.equal(params[1], torch.tensor([[2.0]]))


def edited(edit, seed):
    params = [torch.ones(4000) + torch.arange(4000.0), torch.ones(7, 3)]
    edit(params, torch.Generator().manual_seed(seed))
    return params


@pytest.mark.parametrize(
    "edit",
    [lambda ps, g: add_gaussian_noise(ps, 0.5, g), lambda ps, g: drop_entries(ps, 0.2, g)],
    ids=["distortion", "dropout"],
)
def test_random_weight_edits_are_seeded(edit):
    a, b, c = edited(edit, 7), edited(edit, 7), edited(edit, 8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_weight_distortion_adds_gaussian_noise_of_the_given_scale():
    noise = edited(lambda ps, g: add_gaussian_noise(ps, 0.5, g), 7)[0] - (torch.ones(4000) + torch.arange(4000.0))
    assert abs(noise.std().item() - 0.5) < 0.03 and abs(noise.mean().item()) < 0.03


def test_weight_dropout_zeroes_entries_with_probability_p_and_keeps_the_rest():
    original = torch.ones(4000) + torch.arange(4000.0)
    dropped = edited(lambda ps, g: drop_entries(ps, 0.2, g), 7)[0]
    zeroed = dropped == 0
    assert torch.equal(dropped[~zeroed], original[~zeroed])
    assert abs(zeroed.float().mean().item() - 0.2) < 0.03
    assert torch.equal(edited(lambda ps, g: drop_entries(ps, 0.0, g), 7)[1], torch.ones(7, 3))
    assert torch.equal(edited(lambda ps, g: drop_entries(ps, 1.0, g), 7)[1], torch.zeros(7, 3))


def test_weight_dist_reg_term_is_rms_of_the_difference():
    theta = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    theta0 = [torch.tensor([0.0, 0.0]), torch.tensor([[0.0]])]
    assert torch.isclose(rms_distance(theta, theta0), torch.tensor(((1 + 4 + 9) / 3 + 1e-8) ** 0.5))


def test_l1_sparse_term_is_the_mean_absolute_entry():
    assert mean_abs([torch.tensor([1.0, -2.0]), torch.tensor([[-3.0, 0.0]])]) == pytest.approx(6 / 4)


def batchnorm_model(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    model.train()
    model(torch.randn(8, 2))  # move the running statistics away from their initial values
    return model


def test_mode_connectivity_midpoint_mixes_weights_and_float_buffers():
    model, original = batchnorm_model(0), frozen_copy(batchnorm_model(1))
    model(torch.randn(8, 2))  # a second batch: the two step counters differ
    state = mixed_state(model, original, 0.5)
    theta, theta0 = model.state_dict(), original.state_dict()
    for name in ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "2.weight"]:
        assert torch.allclose(state[name], (theta[name] + theta0[name]) / 2), name
    assert state["1.num_batches_tracked"] is model[1].num_batches_tracked  # integers are the model's own
    state["0.weight"].sum().backward()  # differentiable in the model's weights only, at half weight
    assert torch.equal(model[0].weight.grad, torch.full((3, 2), 0.5)) and original[0].weight.grad is None


def test_mode_connectivity_midpoint_forward_is_the_averaged_model():
    model, original = batchnorm_model(0), frozen_copy(batchnorm_model(1))
    midpoint = copy.deepcopy(model)
    midpoint.load_state_dict(
        {k: (v + original.state_dict()[k]) / 2 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    )
    model.eval(), midpoint.eval()
    x = torch.randn(5, 2)
    assert torch.allclose(
        torch.func.functional_call(model, mixed_state(model, original, 0.5), (x,)), midpoint(x), atol=1e-6
    )


def test_random_relabel_never_returns_the_true_label_and_covers_the_others():
    y = torch.arange(4).repeat(500)
    wrong = random_wrong_labels(y, 4, torch.Generator().manual_seed(0))
    assert (wrong != y).all() and wrong.min() >= 0 and wrong.max() <= 3
    for c in range(4):
        assert set(wrong[y == c].tolist()) == set(range(4)) - {c}
    assert torch.equal(wrong, random_wrong_labels(y, 4, torch.Generator().manual_seed(0)))
    binary = random_wrong_labels(torch.tensor([0, 1, 1, 0]), 2, torch.Generator().manual_seed(3))
    assert torch.equal(binary, torch.tensor([1, 0, 0, 1]))  # with two classes the wrong label is forced


def neg_entropy_grad(model, params, x):
    p = F.softmax(torch.func.functional_call(model, params, (x,)), -1)
    loss = (p * p.log()).sum(-1).mean()  # -H(p), written out
    return torch.autograd.grad(loss, list(params.values()))


def test_tar_tamper_gradient_averages_over_adversaries_and_steps():
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    batches = [(torch.randn(5, 3), torch.randint(0, 4, (5,))) for _ in range(3)]
    # lr 0: every adversary stays at theta, so each of its 3 steps adds its batch's gradient / (2 * 3)
    got = tamper_gradient(model, iter(batches), adversaries=2, steps=3, lr=0.0)
    params = dict(model.named_parameters())
    g1, g2 = neg_entropy_grad(model, params, batches[0][0]), neg_entropy_grad(model, params, batches[1][0])
    for total, a, b in zip(got, g1, g2):
        assert torch.allclose(total, (a + b) / 2, atol=1e-7)


def test_tar_tamper_gradient_is_taken_at_the_attacked_weights():
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    x, y = torch.randn(5, 3), torch.randint(0, 4, (5,))
    (got_w, got_b) = tamper_gradient(model, iter([(x, y)]), adversaries=1, steps=1, lr=0.1)
    params = dict(model.named_parameters())
    ce_grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(params.values()))
    # Adam's first step moves each entry by lr * g / (|g| + eps)
    attacked = {n: (p - 0.1 * g / (g.abs() + 1e-8)).detach() for (n, p), g in zip(params.items(), ce_grads)}
    want_w, want_b = neg_entropy_grad(model, {n: p.requires_grad_() for n, p in attacked.items()}, x)
    assert torch.allclose(got_w, want_w, atol=1e-6) and torch.allclose(got_b, want_b, atol=1e-6)
    assert not torch.allclose(got_w, neg_entropy_grad(model, params, x)[0], atol=1e-4)


STUDENT = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])


def test_scrub_kl_reductions_match_the_definition():
    teacher = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    p, log_q = F.softmax(teacher, -1), F.log_softmax(STUDENT, -1)
    per_example = (p * (p.log() - log_q)).sum(-1)  # KL(p_teacher || p_student), by definition
    assert torch.allclose(kl_from_teacher(STUDENT, teacher, "batchmean"), per_example.mean())
    assert torch.allclose(kl_from_teacher(STUDENT, teacher, "mean"), per_example.sum() / 6)  # torch 'mean': over B x C
    assert torch.allclose(kl_from_teacher(teacher, teacher, "batchmean"), torch.tensor(0.0), atol=1e-7)
    with pytest.raises(ValueError, match="kl_reduction"):
        kl_from_teacher(STUDENT, teacher, "none")


def test_uniform_scrub_kl_reductions_match_the_definition():
    log_q = F.log_softmax(STUDENT, -1)
    per_example = (torch.log(torch.tensor(1 / 3)) - log_q).sum(-1) / 3  # KL(uniform || p_student)
    assert torch.allclose(kl_from_uniform(STUDENT, "batchmean"), per_example.mean())
    assert torch.allclose(kl_from_uniform(STUDENT, "mean"), per_example.sum() / 6)
    assert torch.allclose(kl_from_uniform(torch.zeros(2, 3), "batchmean"), torch.tensor(0.0), atol=1e-7)


def test_retrain_reinitialises_to_the_seeded_initial_weights():
    build = lambda seed: build_model("cnn1d", CNN1DConfig(channels=[4, 8], hidden=16), (1, 12), 3, seed=seed)
    model = build(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    reinitialise(model, 5)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), build(5).state_dict().values()))
    reinitialise(model, 6)
    assert not torch.equal(model.stem[0].weight, build(5).stem[0].weight)


def test_ssd_fine_tunes_its_first_steps_in_eval_mode_as_the_reference():
    """The reference's Fisher passes leave the model in eval mode until its first evaluation (step 100): its first 99
    fine-tuning steps see batch-norm's running statistics and do not update them. `eval_mode_steps: 0` trains in train
    mode from the first step (version 1)."""
    torch.manual_seed(0)
    x, y = torch.randn(24, 4), torch.randint(0, 2, (24,))
    seen = []  # (train mode, batches tracked) at each batch-norm forward
    for eval_steps, expected in ((3, [False, False, False, True, True]), (0, [True] * 5)):
        model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
        ctx = UnlearnContext(frozen_copy(model), x[4:], y[4:], x[:4], y[:4], num_classes=2, train_size=24, seed=0)
        seen.clear()
        model[1].register_forward_pre_hook(lambda m, args: seen.append((m.training, m.num_batches_tracked.item())))
        config = SSDConfig(lr=1e-2, weight_decay=0.0, epochs=1, batch_size=4, eps=1e-6, eval_mode_steps=eval_steps)
        unlearn(SSD(config), model, ctx, max_steps=5)
        steps = seen[-5:]  # the Fisher passes' forwards come first
        assert [mode for mode, _ in steps] == expected
        assert [tracked for _, tracked in steps] == [max(0, i - eval_steps) for i in range(5)]  # no update in eval mode
