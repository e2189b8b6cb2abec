"""Every registered unlearning method runs two steps on a tiny model, from its YAML defaults, changes it, and does
the same again from the same seed; plus the shared loop's schedules. Each method's core math is in
test_method_cores.py."""

import copy

import pytest
import torch

from orchestrator.spec import CONFIG_DIR, SpecError, checked, method_defaults
from workloads.methods import METHODS, UnlearnContext, frozen_copy, unlearn
from workloads.models import CNN1DConfig, build_model

# Structural values the tiny model cannot take from the reference defaults (it has hidden states 0 and 1 only).
TINY_OVERRIDES = {"circuit_breakers": {"layers": [0, 1]}, "tar": {"layers": [0, 1]}} | {
    # instance-wise unlearning: a few PGD steps, the tiny data's own input range
    name: {"pgd_iter": 3, "num_adv_images": 2, "clip_min": None, "clip_max": None}
    for name in ("l2ul", "l2ul_adv", "l2ul_importance", "l2ul_naive")
}


def needs_spare_channels(name):
    """REM repairs through masks over spare channels: its tiny model has example-tied dropout (half the channels)."""
    return getattr(METHODS.get(name), "needs_spare_channels", lambda: False)()


def tiny_context(seed=0, spare=False):
    torch.manual_seed(seed)
    model = build_model(
        "cnn1d", CNN1DConfig(channels=[4, 8], hidden=16, generalisation=0.5 if spare else 1.0), (1, 12), 3, seed=seed
    )
    x, y = torch.randn(40, 1, 12), torch.randint(0, 3, (40,))
    ctx = UnlearnContext(frozen_copy(model), x[8:], y[8:], x[:8], y[:8], num_classes=3, train_size=40, seed=seed)
    return model, ctx


def tiny_config(name, **changes):
    values = {**method_defaults(name), "batch_size": 8, "lr": 1e-2, **TINY_OVERRIDES.get(name, {}), **changes}
    return checked(METHODS.get(name).Config, values, name)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_registered_method_runs_two_steps_changes_the_model_and_is_seeded(name):
    states = []
    for _ in range(2):
        model, ctx = tiny_context(spare=needs_spare_channels(name))
        before = copy.deepcopy(model.state_dict())
        curve = unlearn(METHODS.get(name)(tiny_config(name)), model, ctx, max_steps=2)
        assert ctx.total_steps == 2 and curve and all(torch.isfinite(torch.tensor(loss)) for _, loss in curve)
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items()), (
            f"{name} left the model unchanged"
        )
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0]), f"{name} is not reproducible from its seed"


def test_every_method_has_a_defaults_file_and_no_stray_files():
    files = {
        p.stem for p in (CONFIG_DIR / "methods").glob("*.yaml") if not p.stem.startswith("_")
    }  # _*.yaml: shared bases
    assert set(METHODS.names()) <= files, set(METHODS.names()) - files
    assert files <= set(METHODS.names()), files - set(METHODS.names())


def test_the_reference_methods_are_all_registered():
    assert set(METHODS.names()) == {
        "finetune",
        "gradient_ascent",
        "neggrad_plus",
        "random_relabel",
        "alternating_random_relabel",
        "scrub",
        "alternating_scrub",
        "uniform_scrub",
        "circuit_breakers",
        "tar",
        "ssd",
        "l1_sparse",
        "weight_distortion",
        "weight_attenuation",
        "weight_dropout",
        "weight_dist_reg",
        "mode_connectivity",
        "retrain",
        # the REM study's (issue 13)
        "npo",
        "bad_teacher",
        "salun",
        "potion",
        "rem",
        "rem_npo_only",
        "rem_no_redirect",
        # the project's earlier forms and the reference's SalUn (issue 24)
        "npo_retain",
        "bad_teacher_joint",
        "salun_reference",
        "potion_reconstructed",
        # instance-wise unlearning and its regularisers apart (issue 28)
        "l2ul",
        "l2ul_adv",
        "l2ul_importance",
        "l2ul_naive",
    }
    assert [n for n in METHODS.names() if METHODS.get(n).requires_start_model] == ["tar"]
    assert [n for n in METHODS.names() if METHODS.get(n).is_oracle] == ["retrain"]


def test_defaults_file_missing_a_value_is_rejected():
    with pytest.raises(SpecError, match="alpha"):
        checked(
            METHODS.get("weight_dist_reg").Config, {"lr": 1e-3, "weight_decay": 0.0, "epochs": 1, "batch_size": 8}, "x"
        )


def record_phases(name, steps):
    model, ctx = tiny_context()
    method = METHODS.get(name)(tiny_config(name))
    phases = []
    method.forget_loss = lambda m, x, y, c: (phases.append("f"), m(x).sum() * 0)[1]
    method.retain_loss = lambda m, x, y, c: (phases.append("r"), m(x).sum() * 0)[1]
    unlearn(method, model, ctx, max_steps=steps)
    return "".join(phases)


@pytest.mark.parametrize("name", ["neggrad_plus", "alternating_scrub", "alternating_random_relabel"])
def test_alternating_methods_alternate_full_passes_starting_with_the_forget_set(name):
    assert record_phases(name, 10) == "f" + "rrrr" + "f" + "rrrr"  # 8 forget rows = 1 batch, 32 retain rows = 4 batches


@pytest.mark.parametrize("name", ["gradient_ascent", "scrub", "uniform_scrub", "random_relabel", "circuit_breakers"])
def test_joint_methods_take_a_retain_and_a_forget_batch_every_step(name):
    assert record_phases(name, 3) == "rf" * 3


def test_after_backward_sees_the_steps_gradients_and_its_additions_reach_the_optimiser():
    model, ctx = tiny_context()
    method = METHODS.get("finetune")(tiny_config("finetune", lr=1.0, weight_decay=0.0))
    seen = []

    def zero_the_gradients(m, c):
        seen.append(all(p.grad is not None for p in m.parameters()))
        for p in m.parameters():
            p.grad.zero_()

    method.after_backward = zero_the_gradients
    before = copy.deepcopy(model.state_dict())
    unlearn(method, model, ctx, max_steps=2)
    assert seen == [True, True]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # Adam with zero gradients: no move
