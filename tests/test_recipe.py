"""The REM reference's training recipe as options of `train` (workloads/train.py): its warmup and linear decay, its step
count, its best-test-accuracy checkpoint (with resumption), fp16 with loss scaling, and the retrained baseline's
departures (`train.retrain`: lr, fresh init, drop mode) with the keys they move and the ones they leave alone."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from orchestrator.spec import SpecError, load_spec
from tests.conftest import REPO
from workloads.checkpoint import TrainingCheckpoint
from workloads.data.base import Dataset
from workloads.models import Blocks, CNN1DConfig, build_model
from workloads.nodes import NODE_KINDS, DatasetRef, ModelRef, TrainNodeConfig
from workloads.nodes.base import RunContext
from workloads.nodes.common import FRESH_INIT_SEED_OFFSET, fresh_model, node_model, train_model
from workloads.speed import SpeedConfig, effective_precision, prepare_model
from workloads.train import (
    BatchStream,
    BestOnTest,
    RetrainConfig,
    TrainConfig,
    check_recipe,
    fit,
    generator_for,
    lr_factor,
    recipe_steps,
)

REFERENCE = TrainConfig(batch_size=512, lr=0.025, weight_decay=5e-4, optimizer="sgd", schedule="warmup_linear")


def test_warmup_linear_is_the_references_linear_lr_at_4000_iterations():
    factor = lr_factor(REFERENCE, 4000)
    # LinearLR(t = 1.25 * 4000, warmup = 4000 // 100): its first lr (last_epoch 0) is 1/41 of the base lr, it reaches
    # the base lr after 40 warmup steps and decays by 1/5000 a step from there.
    assert factor(0) == pytest.approx(1 / 41) and factor(39) == pytest.approx(40 / 41)
    assert factor(40) == 1.0 and factor(41) == pytest.approx(1 - 1 / 5000)
    assert factor(3999) == pytest.approx(1 - 3959 / 5000)  # 0.2082 at the 4,000th step
    assert factor(4000) == pytest.approx(1 - 3960 / 5000)  # and the reference's extra step
    assert lr_factor(TrainConfig(schedule="warmup_linear"), 980)(8) == pytest.approx(9 / 10)  # 980 // 100 = 9 warm
    cosine = lr_factor(TrainConfig(final_lr_fraction=0.1), 100)
    assert cosine(0) == 1.0 and cosine(50) == pytest.approx(0.55) and cosine(100) == pytest.approx(0.1)


def test_steps_count_iterations_and_the_references_extra_step():
    cfg = TrainConfig(batch_size=512, iterations=4000)
    assert recipe_steps(cfg, 50_000, 50_000) == (4000, 4000)
    overshoot = TrainConfig(batch_size=512, iterations=4000, overshoot=True)
    assert recipe_steps(overshoot, 50_000, 50_000) == (4000, 4001)  # 98 batches a pass: 4,000 ends mid-pass
    assert recipe_steps(overshoot, 50_000, 49_000) == (4000, 4001)  # the retrained baseline's 96 a pass, too
    assert recipe_steps(overshoot, 50_000, 51_200) == (4000, 4000)  # 100 a pass: the 40th pass ends at 4,000
    assert recipe_steps(TrainConfig(epochs=40.8, batch_size=512), 50_000, 49_000) == (3998, 3998)  # by epochs


def recorded_lrs(monkeypatch, cfg: TrainConfig, n=64) -> list[float]:
    """The lr of every optimizer step of train_classifier on a tiny linear model."""
    lrs = []
    real_step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    from workloads.train import train_classifier

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)
    train_classifier(nn.Linear(5, 3), x, y, cfg, seed=0)
    return lrs


def test_train_classifier_runs_the_schedule_over_the_nominal_steps_and_takes_the_extra_one(monkeypatch):
    cfg = TrainConfig(batch_size=10, lr=0.5, optimizer="sgd", schedule="warmup_linear", iterations=200, overshoot=True)
    lrs = recorded_lrs(monkeypatch, cfg)  # 64 examples: 7 batches a pass, 200 ends mid-pass
    factor = lr_factor(cfg, 200)
    assert len(lrs) == 201 and lrs == pytest.approx([0.5 * factor(e) for e in range(201)])
    assert lrs[0] == pytest.approx(0.5 / 3)  # floor(200 * 1%) = 2 warmup steps


class Counter(nn.Module):
    """A model whose test accuracy is scripted: its single weight holds the step it was last set to."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))


def scripted_selector(monkeypatch, accuracies: dict[int, float], per_pass: int, total: int):
    evaluated = []

    def fake_predict(model, x):
        step = int(model.w.item())
        evaluated.append(step)
        hits = round(accuracies.get(step, 0.0) * 10)
        return torch.tensor([[1.0, 0.0]] * hits + [[0.0, 1.0]] * (10 - hits))

    monkeypatch.setattr("workloads.train.predict", fake_predict)
    selector = BestOnTest(torch.zeros(10, 1), torch.zeros(10, dtype=torch.long), 5, per_pass, total)
    model = Counter()
    for step in range(1, total + 1):
        with torch.no_grad():
            model.w.fill_(step)
        selector.observe(step, model)
    return selector, model, evaluated


def test_best_test_scores_every_fifth_pass_and_the_last_and_keeps_the_first_best(monkeypatch):
    # The reference's schedule: 4,001 steps of 98 a pass; Naive.unlearn scores after passes 5, 10, ..., 40 (0-based).
    _, _, evaluated = scripted_selector(monkeypatch, {}, 98, 4001)
    assert evaluated == [98 * (i + 1) for i in range(5, 40, 5)] + [4001]
    selector, model, evaluated = scripted_selector(monkeypatch, {24: 0.5, 44: 0.5}, per_pass=4, total=49)
    assert evaluated == [24, 44]  # the 13th, partial pass (index 12) is not a multiple of 5
    assert selector.best_step == 24  # a tie does not replace the earlier model
    selector.restore(model)
    assert model.w.item() == 24.0
    selector, model, _ = scripted_selector(monkeypatch, {24: 0.3, 44: 0.6}, per_pass=4, total=49)
    selector.restore(model)
    assert selector.best_step == 44 and model.w.item() == 44.0
    selector, model, _ = scripted_selector(monkeypatch, {}, per_pass=4, total=49)  # never above 0: the last stays
    selector.restore(model)
    assert selector.best is None and model.w.item() == 49.0


def tiny_fit(tmp_path, interrupt_at=None, fp16=False):
    """fit() with best-test selection and a checkpoint every 5 steps on a tiny classifier; optionally interrupted."""
    torch.manual_seed(0)
    model = Blocks(nn.Sequential(nn.Linear(6, 16), nn.ReLU()), [], nn.Linear(16, 3))
    if fp16:
        model.autocast_dtype = torch.float16  # what workloads.speed sets on a GPU; CPU autocast runs it too
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    stream = BatchStream(x, y, 8, generator_for(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(REFERENCE, 60))
    selector = BestOnTest(x[:20], y[:20], 2, stream.batches_per_pass, 60)
    checkpoint = TrainingCheckpoint(tmp_path / "ckpt.pt", every_steps=5, every_seconds=0)

    def stop(step):
        if step == interrupt_at:
            raise KeyboardInterrupt

    try:
        fit(model, stream, optimizer, schedule, 60, after_step=stop, checkpoint=checkpoint, selector=selector)
    except KeyboardInterrupt:
        return None, None
    return model.state_dict(), selector


def test_a_resumed_run_keeps_the_same_best_model_as_an_uninterrupted_one(tmp_path):
    whole, selector = tiny_fit(tmp_path / "a")
    assert selector.best_step > 0
    assert tiny_fit(tmp_path / "b", interrupt_at=33) == (None, None)
    resumed, resumed_selector = tiny_fit(tmp_path / "b")
    assert resumed_selector.best_step == selector.best_step
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


def test_fp16_runs_on_gpus_only_and_fit_scales_its_loss(tmp_path):
    assert effective_precision(SpeedConfig(precision="fp16"), torch.device("cuda")) == "fp16"
    assert effective_precision(SpeedConfig(precision="fp16"), torch.device("cpu")) == "fp32"
    model = prepare_model(nn.Linear(2, 2), SpeedConfig(precision="fp16"), torch.device("cpu"))
    assert getattr(model, "autocast_dtype", None) is None
    state, _ = tiny_fit(tmp_path, fp16=True)
    assert all(torch.isfinite(v).all() for v in state.values())
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert saved["scaler"]["scale"] > 1  # the loss was scaled (GradScaler)
    tiny_fit(tmp_path / "fp32")
    assert "scaler" not in torch.load(tmp_path / "fp32" / "ckpt.pt", weights_only=True)


# -- the retrained baseline -------------------------------------------------------------------------------------------
TIED = {"channels": [8, 16], "hidden": 32, "generalisation": 0.5, "memorisation": 0.5, "first_tied_layer": 2}


def node_config(train: dict, seed=0) -> TrainNodeConfig:
    base = TrainConfig(epochs=3, batch_size=32, lr=3e-3, weight_decay=0.0, augment=False)
    if "retrain" in train:
        train = {**train, "retrain": RetrainConfig(**train["retrain"])}
    return TrainNodeConfig(
        dataset=DatasetRef(name="mnist1d", args={}),
        model=ModelRef(name="cnn1d", args=TIED),
        speed=SpeedConfig(),
        train=dataclasses.replace(base, **train),
        seed=seed,
    )


def context(config) -> RunContext:
    g = torch.Generator().manual_seed(0)
    data = Dataset(
        torch.randn(96, 1, 20, generator=g),
        torch.randint(0, 4, (96,), generator=g),
        torch.randn(32, 1, 20, generator=g),
        torch.randint(0, 4, (32,), generator=g),
        num_classes=4,
    )
    return RunContext(torch.device("cpu"), data, None)


def trained(train: dict, retrain=True):
    config = node_config(train)
    ctx = context(config)
    return train_model(config, ctx, torch.arange(80), retrain=retrain), ctx


def test_retrain_lr_is_the_recipe_at_that_lr():
    departed, _ = trained({"retrain": {"lr": 1e-3}})
    same, _ = trained({"lr": 1e-3})
    assert all(torch.equal(departed.state[k], same.state[k]) for k in same.state)
    original_recipe, _ = trained({"retrain": {"lr": 1e-3}}, retrain=False)  # the original ignores it
    assert not all(torch.equal(original_recipe.state[k], same.state[k]) for k in same.state)


def test_fresh_init_is_another_draw_with_zero_biases():
    config = node_config({})
    ctx = context(config)
    original, fresh = node_model(config, ctx.data, ctx.device, 0), fresh_model(config, ctx.data, ctx.device, 0)
    redrawn = node_model(config, ctx.data, ctx.device, FRESH_INIT_SEED_OFFSET)
    for name, value in fresh.state_dict().items():
        if name.endswith("bias"):
            assert (value == 0).all()
        else:
            assert torch.equal(value, redrawn.state_dict()[name])
            assert not torch.equal(value, original.state_dict()[name])


def test_drop_mode_training_never_uses_the_memorisation_channels():
    # The head's weights from the last hidden layer's memorisation channels (16 of 32) get no gradient in drop mode:
    # with no weight decay and Adam they stay at their initial values; trained with masks they move.
    start = build_model("cnn1d", CNN1DConfig(**TIED), (1, 20), 4, 0).state_dict()["head.4.weight"]
    dropped, _ = trained({"retrain": {"tied_dropout": "drop"}})
    masked, _ = trained({})
    assert torch.equal(dropped.state["head.4.weight"][:, 16:], start[:, 16:])
    assert not torch.equal(dropped.state["head.4.weight"][:, :16], start[:, :16])
    assert not torch.equal(masked.state["head.4.weight"][:, 16:], start[:, 16:])


def test_retrain_departures_enter_the_retrained_baselines_key_and_not_the_originals():
    plain = node_config({}).as_dict()
    departed = node_config({"retrain": {"lr": 0.005, "init": "fresh"}}).as_dict()
    original, retrain = NODE_KINDS.get("train_original"), NODE_KINDS.get("train_retrain")
    assert original.key_view(plain) == original.key_view(departed)
    assert retrain.key_view(plain) != retrain.key_view(departed)
    assert "retrain" not in retrain.key_view(plain)["train"]  # unset: the keys of before
    best = node_config({"select": "best_test"}).as_dict()
    assert original.key_view(best)["train"]["select"] == "best_test"


def test_best_test_reports_the_step_it_chose_and_scores_the_test_set_on_the_chosen_weights():
    out, ctx = trained({"select": "best_test", "select_every": 1, "epochs": 4}, retrain=False)
    assert out.result["selected_step"] in (0, 6, 9, 12)  # 3 batches a pass: passes 1, 2 and the last, 3 (0-based)
    assert out.result["steps"] == 12 and math.isfinite(out.result["test_acc"])


def test_bad_recipe_values_are_refused_with_their_key(tmp_path):
    for bad, key in (
        ({"schedule": "step"}, "train.schedule"),
        ({"select": "best_val"}, "train.select"),
        ({"retrain": RetrainConfig(init="random")}, "train.retrain.init"),
        ({"retrain": RetrainConfig(tied_dropout="off")}, "train.retrain.tied_dropout"),
    ):
        with pytest.raises(ValueError, match=key.replace(".", r"\.")):
            check_recipe(TrainConfig(**bad))
    with pytest.raises(SpecError, match=r"train\.schedule"):
        load_spec(REPO / "configs" / "sweeps" / "rem_task_space_cpu.yaml", ["train.schedule=step"])


def test_a_cross_entropy_step_is_unchanged_by_the_loss_scaler_when_off():
    # The GradScaler is disabled for fp32/bf16: fit's steps are the plain ones.
    torch.manual_seed(0)
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    stream = BatchStream(x, y, 8, generator_for(0))
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    fit(a, stream, opt_a, torch.optim.lr_scheduler.LambdaLR(opt_a, lambda e: 1.0), 1)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    F.cross_entropy(b(x[stream.last_index]), y[stream.last_index]).backward()
    opt_b.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
