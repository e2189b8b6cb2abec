"""Populations of models: a member trained in a vmapped block is its solo run's model (the retrained member is its
`train_retrain` run, the unlearned member its `unlearn` run, the attacked member its relearning attack), in any
block split, up to float rounding; methods that cannot be vmapped run their members one after another and say why;
the blocks' outputs join into one population that the score node reads."""

import dataclasses

import pytest
import torch

from workloads.data import DigitsConfig, load_dataset
from workloads.distributional import ScoreConfig
from workloads.forget import ForgetConfig, select_forget_set
from workloads.methods import METHODS
from workloads.methods.base import MethodConfig
from workloads.methods.random_relabel import RandomRelabelConfig
from workloads.methods.scrub import ScrubConfig
from workloads.methods.weight_edits import WeightDistortionConfig
from workloads.nodes import (
    NODE_KINDS,
    DatasetRef,
    InputNode,
    Members,
    ModelRef,
    PopulationRelearnNodeConfig,
    PopulationScoreNodeConfig,
    PopulationTrainNodeConfig,
    PopulationUnlearnNodeConfig,
    RunContext,
    TrainNodeConfig,
    UnlearnNodeConfig,
)
from workloads.nodes.common import load_model, split_tensors
from workloads.population import PopulationOutputs, member_blocks, member_seed
from workloads.relearn import RelearnConfig, relearn
from workloads.speed import SpeedConfig
from workloads.train import TrainConfig, predict

DATA = {
    "dataset": DatasetRef(name="digits", args={}),
    "model": ModelRef(name="mlp", args={"hidden": [16]}),
    "speed": SpeedConfig(),
}
FORGET = ForgetConfig(target_class=3, fraction=0.5, seed=0)
RECIPE = TrainConfig(epochs=2, batch_size=64, lr=1e-2, weight_decay=1e-4, augment=True)
KEEP = PopulationOutputs(sample=50, keep_models=True)
CLOSE = {"rtol": 1e-4, "atol": 1e-4}


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits", DigitsConfig())
    return RunContext(torch.device("cpu"), data, select_forget_set(data.y_train, FORGET))


def members(seeds, vectorize=True, outputs=KEEP) -> Members:
    return Members(seeds=list(seeds), outputs=outputs, vectorize=vectorize)


def forget_logits(ctx, state) -> torch.Tensor:
    model = load_model(TrainNodeConfig(**DATA, train=RECIPE, seed=0), ctx.data, state, ctx.device)
    return predict(model, split_tensors(ctx)["forget"][0])


def test_member_seeds_and_blocks_do_not_move_as_a_population_grows():
    seeds = {
        role: [member_seed(1000, role, m) for m in range(64)] for role in ("reference", "independent", "unlearned")
    }
    assert len({s for values in seeds.values() for s in values}) == 3 * 64  # three roles, never one seed twice
    assert member_blocks(32, 16) == member_blocks(64, 16)[:2] and member_blocks(40, 16)[-1] == range(32, 40)


def test_retrained_members_in_a_vmapped_block_are_their_train_retrain_runs(digits):
    seeds = [member_seed(1000, "reference", m) for m in range(3)]
    config = PopulationTrainNodeConfig(**DATA, train=RECIPE, forget=FORGET, members=members(seeds))
    out = NODE_KINDS.get("population_train").run(config, {}, digits)
    assert out.result["mode"] == "vmap" and out.tensors["logits_forget"].shape[:2] == (3, len(digits.forget_set.forget))
    for m, seed in enumerate(seeds):
        solo = NODE_KINDS.get("train_retrain").run(
            TrainNodeConfig(**DATA, train=RECIPE, seed=seed, forget=FORGET), {}, digits
        )
        torch.testing.assert_close(out.tensors["logits_forget"][m], forget_logits(digits, solo.state), **CLOSE)
    # Another block split trains the same members; one at a time, the same again.
    tail = dataclasses.replace(config, members=members(seeds[1:]))
    torch.testing.assert_close(
        NODE_KINDS.get("population_train").run(tail, {}, digits).tensors["logits_forget"],
        out.tensors["logits_forget"][1:],
        **CLOSE,
    )
    sequential = NODE_KINDS.get("population_train").run(
        dataclasses.replace(config, members=members(seeds, False)), {}, digits
    )
    assert sequential.result["mode"] == "sequential" and "vectorize is off" in sequential.result["message"]
    torch.testing.assert_close(sequential.tensors["logits_forget"], out.tensors["logits_forget"], **CLOSE)
    assert not torch.allclose(out.tensors["logits_forget"][0], out.tensors["logits_forget"][1])  # members differ


HPARAMS = {
    "neggrad_plus": MethodConfig(lr=3e-3, weight_decay=0.0, epochs=1, batch_size=32),
    "scrub": ScrubConfig(lr=3e-3, weight_decay=0.0, epochs=1, batch_size=32, alpha=1.0, gamma=1.0, kl_reduction="mean"),
    "weight_distortion": WeightDistortionConfig(lr=1e-3, weight_decay=0.0, epochs=1, batch_size=32, sigma=0.05),
    "random_relabel": RandomRelabelConfig(lr=1e-3, weight_decay=0.0, epochs=0.5, batch_size=32, alpha=1.0),
}


@pytest.fixture(scope="module")
def original(digits):
    config = TrainNodeConfig(**DATA, train=RECIPE, seed=43)
    return NODE_KINDS.get("train_original").run(config, {}, digits).state


@pytest.mark.parametrize("method", sorted(HPARAMS))
def test_unlearned_members_are_their_unlearn_runs(digits, original, method):
    hparams = dataclasses.replace(HPARAMS[method], augment=method == "neggrad_plus")
    seeds = [member_seed(1000, "unlearned", m) for m in range(3)]
    config = PopulationUnlearnNodeConfig(**DATA, forget=FORGET, method=method, hparams=hparams, members=members(seeds))
    inputs = {"start": InputNode({}, lambda: original), "original": InputNode({}, lambda: original)}
    out = NODE_KINDS.get("population_unlearn").run(config, inputs, digits)
    if METHODS.get(method).vmappable:
        assert out.result["mode"] == "vmap"
    else:  # random labels are drawn inside its loss, from each run's own generator
        assert out.result["mode"] == "sequential" and "not marked vmappable" in out.result["message"]
    for m, seed in enumerate(seeds):
        solo_config = UnlearnNodeConfig(**DATA, forget=FORGET, method=method, hparams=hparams, seed=seed)
        solo = NODE_KINDS.get("unlearn").run(solo_config, inputs, digits)
        torch.testing.assert_close(out.tensors["logits_forget"][m], forget_logits(digits, solo.state), **CLOSE)
    assert not torch.allclose(out.tensors["logits_forget"][0], out.tensors["logits_forget"][2])


def test_relearned_members_are_their_relearning_attacks(digits, original):
    seeds = [7, 8]
    block = {k: torch.stack([v, v * 0.9]) for k, v in original.items()}  # two members: the original, shrunk
    cfg = RelearnConfig(lr=1e-3, final_lr=1e-4, epochs=0.5, batch_size=32, augment=True)
    config = PopulationRelearnNodeConfig(**DATA, forget=FORGET, relearn=cfg, k=2, members=members(seeds))
    out = NODE_KINDS.get("population_relearn").run(config, {"models": InputNode({}, lambda: block)}, digits)
    assert out.result["mode"] == "vmap" and out.state["stem.1.weight"].shape[0] == 2
    for m, seed in enumerate(seeds):
        model = load_model(config, digits.data, {k: v[m] for k, v in block.items()}, digits.device)
        relearn(model, digits.data, digits.forget_set, 2, cfg, seed, target_class=3)
        torch.testing.assert_close(
            out.tensors["logits_forget"][m], predict(model, split_tensors(digits)["forget"][0]), **CLOSE
        )


def test_the_score_node_reads_the_blocks_as_one_population(digits):
    seeds = [member_seed(5, "reference", m) for m in range(4)]
    outputs = PopulationOutputs(sample=30)
    blocks = [
        NODE_KINDS.get("population_train").run(
            PopulationTrainNodeConfig(
                **DATA,
                train=dataclasses.replace(RECIPE, epochs=1),
                forget=FORGET,
                members=members(part, outputs=outputs),
            ),
            {},
            digits,
        )
        for part in (seeds[:2], seeds[2:])
    ]
    assert blocks[0].state is None and blocks[0].tensors["logits_retain"].shape[1] == 30  # no weights kept: a sample
    inputs = {
        f"{role}_{i}": InputNode({}, dict, lambda b=b: b.tensors)
        for role in ("candidate", "reference")
        for i, b in enumerate(blocks)
    }
    config = PopulationScoreNodeConfig(**DATA, score=ScoreConfig(), members=4)
    result = NODE_KINDS.get("population_score").run(config, inputs, digits).result
    assert result["forget_quality"] == 1.0 and result["score"] == pytest.approx(1.0)  # a population against itself
    assert result["klom_forget_p95"] == 0.0 and result["members"] == 4
    with pytest.raises(ValueError, match="hold 4 members, not 5"):
        NODE_KINDS.get("population_score").run(dataclasses.replace(config, members=5), inputs, digits)
