"""Every registered unlearning method runs two steps on a tiny model, from its YAML defaults, and changes it;
plus each method's pure core against values computed by hand."""
import copy

import pytest
import torch
import torch.nn.functional as F

from orchestrator.spec import CONFIG_DIR, SpecError, checked, method_defaults
from workloads.methods import METHODS, UnlearnContext, frozen_copy, unlearn
from workloads.methods.scrub import kl_from_teacher
from workloads.methods.weight_dist_reg import rms_distance
from workloads.methods.weight_distortion import add_gaussian_noise
from workloads.models import CNN1DConfig, build_model


def tiny_context(seed=0):
    torch.manual_seed(seed)
    model = build_model("cnn1d", CNN1DConfig(channels=[4, 8], hidden=16), (1, 12), 3, seed=seed)
    x, y = torch.randn(40, 1, 12), torch.randint(0, 3, (40,))
    ctx = UnlearnContext(frozen_copy(model), x[8:], y[8:], x[:8], y[:8], num_classes=3, train_size=40, seed=seed)
    return model, ctx


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_runs_two_steps_and_changes_the_model(name):
    method_cls = METHODS.get(name)
    cfg = checked(method_cls.Config, {**method_defaults(name), "batch_size": 8, "lr": 1e-2}, name)
    model, ctx = tiny_context()
    before = copy.deepcopy(model.state_dict())
    curve = unlearn(method_cls(cfg), model, ctx, max_steps=2)
    assert ctx.total_steps == 2 and curve and all(torch.isfinite(torch.tensor(loss)) for _, loss in curve)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), f"{name} left the model unchanged"


def test_every_method_has_a_defaults_file_and_no_stray_files():
    files = {p.stem for p in (CONFIG_DIR / "methods").glob("*.yaml")}
    assert set(METHODS.names()) <= files, set(METHODS.names()) - files
    assert files <= set(METHODS.names()), files - set(METHODS.names())


def test_defaults_file_missing_a_value_is_rejected():
    with pytest.raises(SpecError, match="alpha"):
        checked(METHODS.get("weight_dist_reg").Config, {"lr": 1e-3, "weight_decay": 0.0, "epochs": 1, "batch_size": 8}, "x")


def test_scrub_kl_reductions_match_the_definition():
    student, teacher = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]), torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    p, log_q = F.softmax(teacher, -1), F.log_softmax(student, -1)
    per_example = (p * (p.log() - log_q)).sum(-1)  # KL(p_teacher || p_student), by definition
    assert torch.allclose(kl_from_teacher(student, teacher, "batchmean"), per_example.mean())
    assert torch.allclose(kl_from_teacher(student, teacher, "mean"), per_example.sum() / 6)  # torch 'mean': over B x C
    assert torch.allclose(kl_from_teacher(teacher, teacher, "batchmean"), torch.tensor(0.0), atol=1e-7)


def test_weight_distortion_is_seeded_gaussian_noise():
    params = [torch.zeros(2000)]
    add_gaussian_noise(params, 0.5, torch.Generator().manual_seed(7))
    again = [torch.zeros(2000)]
    add_gaussian_noise(again, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(params[0], again[0])
    assert abs(params[0].std().item() - 0.5) < 0.03 and abs(params[0].mean().item()) < 0.03


def test_weight_dist_reg_term_is_rms_of_the_difference():
    theta = [torch.tensor([1.0, 2.0]), torch.tensor([[3.0]])]
    theta0 = [torch.tensor([0.0, 0.0]), torch.tensor([[0.0]])]
    assert torch.isclose(rms_distance(theta, theta0), torch.tensor(((1 + 4 + 9) / 3 + 1e-8) ** 0.5))


def test_neggrad_plus_alternates_full_passes_starting_with_the_forget_set():
    model, ctx = tiny_context()
    cfg = checked(METHODS.get("neggrad_plus").Config, {**method_defaults("neggrad_plus"), "batch_size": 8}, "x")
    method = METHODS.get("neggrad_plus")(cfg)
    phases = []
    method.forget_loss = lambda m, x, y, c: (phases.append("f"), m(x).sum() * 0)[1]
    method.retain_loss = lambda m, x, y, c: (phases.append("r"), m(x).sum() * 0)[1]
    unlearn(method, model, ctx, max_steps=10)
    assert "".join(phases) == "f" + "rrrr" + "f" + "rrrr"  # 8 forget rows = 1 batch, 32 retain rows = 4 batches
