"""Where the study follows the reference code (docs/fidelity.md), one test per difference that could change numbers:
augmentation in unlearning and relearning, TAR's retain target, fp32 by default, the retrained model's step count,
relearning reported as means of the last evaluations, the error barrier, and what evaluations see."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.spec import load_spec
from tests.conftest import REPO
from tests.test_methods import tiny_config, tiny_context
from workloads.data import load_dataset
from workloads.data.cifar import crop_flip
from workloads.data.digits import DigitsConfig
from workloads.evaluation import EvaluationConfig, scored_images
from workloads.forget import ForgetConfig, select_forget_set
from workloads.methods import METHODS, UnlearnContext, frozen_copy, unlearn
from workloads.methods.circuit_breakers import hidden_mse
from workloads.methods.ssd import fisher_diagonal
from workloads.nodes import (
    NODE_KINDS,
    DatasetRef,
    EvaluateNodeConfig,
    InputNode,
    ModelRef,
    RunContext,
    TrainNodeConfig,
)
from workloads.nodes.common import node_model
from workloads.relearn import RelearnConfig, relearn
from workloads.speed import SpeedConfig
from workloads.train import TrainConfig, steps_for
from workloads.weightspace import error_barrier

STUDY = REPO / "configs" / "sweeps" / "cifar10_resnet18_study.yaml"


class CountingAugment:
    """An augmentation that marks what it saw: it adds 1000 to every input, so an augmented batch is unmistakable."""

    def __init__(self):
        self.calls, self.examples = 0, 0

    def __call__(self, x, generator):
        self.calls, self.examples = self.calls + 1, self.examples + len(x)
        return x + 1000.0


@pytest.mark.parametrize("name, batches_per_step", [("finetune", 1), ("gradient_ascent", 2)])
def test_unlearning_streams_go_through_the_augmentation_when_asked(name, batches_per_step):
    model, ctx = tiny_context()
    ctx.augment = augment = CountingAugment()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].min().item()))
    unlearn(METHODS.get(name)(tiny_config(name)), model, ctx, max_steps=3)
    assert augment.calls == 3 * batches_per_step
    assert seen and min(seen) >= 1000 - 10  # every batch the student saw was augmented


def test_ssd_fisher_sees_augmented_batches_when_asked():
    model = nn.Linear(2, 2)
    x, y = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    augment = CountingAugment()
    clean, augmented = fisher_diagonal(model, x, y, 1), fisher_diagonal(model, x, y, 1, augment, torch.Generator())
    assert augment.calls == 2 and not torch.allclose(clean[0], augmented[0])


def test_tar_retain_target_is_the_initial_safeguard_not_the_original():
    """Started from a safeguard that differs from the original, TAR's hidden-state MSE is zero at its first step (the
    model is its start) and would not be against the original."""
    safeguard, ctx = tiny_context(seed=0)
    original, _ = tiny_context(seed=1)
    ctx.original = frozen_copy(original)
    ctx.start = frozen_copy(safeguard)
    tar = METHODS.get("tar")(tiny_config("tar"))
    x, y = ctx.retain_x, ctx.retain_y
    loss = tar.retain_loss(safeguard, x, y, ctx)
    assert loss.item() == pytest.approx(tar.cfg.alpha * F.cross_entropy(safeguard(x), y).item(), rel=1e-6)
    _, hidden = safeguard(x, return_hidden=True)
    _, against_original = ctx.original(x, return_hidden=True)
    assert hidden_mse(hidden, against_original, tar.cfg.layers).item() > 1e-3
    assert METHODS.get("tar").version == 2


def test_unlearn_sets_the_start_model_before_any_weight_edit():
    model, ctx = tiny_context()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unlearn(METHODS.get("weight_distortion")(tiny_config("weight_distortion")), model, ctx, max_steps=1)
    assert all(torch.equal(before[k], v) for k, v in ctx.start.state_dict().items())
    assert not all(p.requires_grad for p in ctx.start.parameters())


def test_the_study_runs_fp32_by_default_and_bf16_only_as_a_profile():
    assert load_spec(STUDY).speed.precision == "fp32"
    assert load_spec(STUDY, ["bf16"]).speed.precision == "bf16"
    assert load_spec(STUDY, ["smoke", "bf16"]).speed.precision == "bf16"


def test_the_study_augments_unlearning_and_relearning_and_scores_clean_images():
    spec = load_spec(STUDY)
    assert spec.method_overrides["augment"] is True and spec.relearn.augment is True
    assert spec.evaluation.augment is False and spec.train.augment is True


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", DigitsConfig())
    forget_set = select_forget_set(data.y_train, ForgetConfig(target_class=3, fraction=0.5, seed=0))
    return data, forget_set


# The data, model and speed sections of the node configs below: digits, a one-hidden-layer MLP, fp32.
DIGITS_MLP = {
    "dataset": DatasetRef(name="digits", args={}),
    "model": ModelRef(name="mlp", args={"hidden": [16]}),
    "speed": SpeedConfig(),
}


def test_the_retrained_model_takes_the_originals_steps(digits):
    data, forget_set = digits
    config = TrainNodeConfig(**DIGITS_MLP, train=TrainConfig(epochs=2, batch_size=64, lr=1e-3, augment=False), seed=0)
    ctx = RunContext(torch.device("cpu"), data, forget_set)
    original = NODE_KINDS.get("train_original").run(config, {}, ctx).result
    retrain = NODE_KINDS.get("train_retrain").run(config, {}, ctx).result
    full = steps_for(2, len(data.y_train), 64)
    assert original["steps"] == retrain["steps"] == full
    assert retrain["train_examples"] < original["train_examples"]
    assert steps_for(2, retrain["train_examples"], 64) < full  # the old count, over the retain set only
    assert NODE_KINDS.get("train_retrain").version == 2


def test_relearning_reports_means_of_the_last_evaluations_of_both_accuracies(digits):
    data, forget_set = digits
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    cfg = RelearnConfig(lr=1e-2, final_lr=1e-3, epochs=0.5, batch_size=64, eval_every=1, report_last=3)
    out = relearn(model, data, forget_set, 0, cfg, seed=0)
    assert len(out["curve"]) == len(out["test_curve"]) == out["steps"]
    assert out["heldout_forget_acc"] == pytest.approx(sum(a for _, a in out["curve"][-3:]) / 3)
    assert out["test_acc"] == pytest.approx(sum(a for _, a in out["test_curve"][-3:]) / 3)
    assert out["test_acc_final"] == out["test_curve"][-1][1]
    final = (model.eval()(data.x_test).argmax(1) == data.y_test).float().mean().item()
    assert out["test_acc_final"] == pytest.approx(final)


def test_relearning_trains_on_augmented_batches_when_asked(digits):
    data, forget_set = digits
    for augment_on, expected in ((False, 0), (True, steps_for(0.25, len(data.y_train), 64))):
        counting = CountingAugment()
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        relearn(
            model,
            dataclasses.replace(data, augment=counting),
            forget_set,
            0,
            RelearnConfig(epochs=0.25, batch_size=64, eval_every=5, report_last=1, augment=augment_on),
            seed=0,
        )
        assert counting.calls == expected


def test_error_barrier_of_a_known_path():
    # errors 0.1, 0.5, 0.3: the line at t=0.5 is 0.2, so the path rises 0.3 above it
    assert error_barrier([0.0, 0.5, 1.0], [0.9, 0.5, 0.7]) == pytest.approx(0.3)
    assert error_barrier([0.0, 0.5, 1.0], [0.9, 0.85, 0.8]) == pytest.approx(0.0)


def test_augmented_evaluation_is_one_fixed_draw_and_clean_by_default():
    x = torch.rand(6, 3, 8, 8)
    augment = crop_flip(padding=2)
    assert scored_images(x, EvaluationConfig(), augment) is x
    first, second = (
        scored_images(x, EvaluationConfig(augment=True), augment),
        scored_images(x, EvaluationConfig(augment=True), augment),
    )
    assert torch.equal(first, second) and not torch.equal(first, x)
    assert scored_images(x, EvaluationConfig(augment=True), None) is x  # data without an augmentation stays clean


def test_augmented_evaluation_scores_training_splits_only(digits):
    data, forget_set = digits
    data = dataclasses.replace(data, augment=lambda x, g: torch.zeros_like(x))  # every augmented image blank
    base = EvaluateNodeConfig(**DIGITS_MLP, forget=ForgetConfig(target_class=3), evaluation=EvaluationConfig())
    state = node_model(base, data, torch.device("cpu")).state_dict()
    model = InputNode({}, lambda: state)
    ctx = RunContext(torch.device("cpu"), data, forget_set)
    results = {}
    for augment_on in (False, True):
        config = dataclasses.replace(base, evaluation=EvaluationConfig(augment=augment_on))
        results[augment_on] = NODE_KINDS.get("evaluate").run(config, {"model": model}, ctx).result
    assert results[True]["test_acc"] == results[False]["test_acc"]
    assert results[True]["retain_acc"] != results[False]["retain_acc"]  # blank images: one class for all


def batch_norm_context():
    """A model with batch-norm whose running statistics are far from any batch's (so eval and train mode differ)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    model[2].running_mean.fill_(5.0)
    x, y = torch.randn(24, 1, 6), torch.randint(0, 3, (24,))
    return model, UnlearnContext(frozen_copy(model), x[8:], y[8:], x[:8], y[:8], num_classes=3, train_size=24, seed=0)


def test_scrub_teacher_runs_in_train_mode_so_its_first_kl_is_zero():
    """At step 0 the student is the teacher; with both in train mode (batch statistics) the retain KL is exactly 0.
    An eval-mode teacher would read the running statistics and differ."""
    model, ctx = batch_norm_context()
    cfg = dataclasses.replace(tiny_config("scrub"), gamma=0.0, lr=0.0)
    losses = []
    scrub = METHODS.get("scrub")(cfg)
    retain_loss = scrub.retain_loss
    scrub.retain_loss = lambda *args: losses.append(retain_loss(*args)) or losses[-1]
    unlearn(scrub, model, ctx, max_steps=1)
    assert losses[0].item() == pytest.approx(0.0, abs=1e-7)
    ctx.original.eval()
    assert retain_loss(model.train(), ctx.retain_x[:8], ctx.retain_y[:8], ctx).item() > 1e-3


def test_every_stream_draws_each_example_once_per_pass_in_a_new_order():
    from workloads.train import BatchStream, generator_for

    x = torch.arange(10.0)
    stream = BatchStream(x, torch.arange(10), 4, generator_for(0))
    passes = [torch.cat([next(stream)[1] for _ in range(stream.batches_per_pass)]) for _ in range(2)]
    assert all(sorted(p.tolist()) == list(range(10)) for p in passes)
    assert not torch.equal(passes[0], passes[1])  # reshuffled, not replayed


def test_ssd_fisher_reads_running_statistics_and_leaves_the_mode_as_it_was():
    model, ctx = batch_norm_context()
    model.train()
    fisher = fisher_diagonal(model, ctx.retain_x, ctx.retain_y, 8)
    assert model.training
    model.eval()
    by_hand = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(0, len(ctx.retain_y), 8):
        grads = torch.autograd.grad(
            F.cross_entropy(model(ctx.retain_x[i : i + 8]), ctx.retain_y[i : i + 8]), list(model.parameters())
        )
        for f, g in zip(by_hand, grads):
            f.add_(g.square())
    assert all(torch.allclose(a, b) for a, b in zip(fisher, by_hand))
