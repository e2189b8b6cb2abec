"""What several node kinds do the same way: the dataset and model a node config names, built on the node's device
with its speed settings, the evaluation splits of the forget set, and the training of the original and the retrained
baseline (the latter with `train.retrain`'s departures from the recipe)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Optional

import torch
from torch import nn

from workloads.config import keyed_section, typed
from workloads.data import DATASETS, Dataset, load_dataset
from workloads.models import MODELS, build_model
from workloads.nodes.base import DataSize, NodeOutput, RunContext, Work
from workloads.nodes.configs import DataNodeConfig, DatasetRef, ModelRef, TrainNodeConfig
from workloads.speed import SpeedConfig, effective_precision, prepare_model
from workloads.train import RetrainConfig, TrainConfig, evaluate, recipe_steps, train_classifier

# A fresh init's seed is the node's plus this, so it is not the original's draw. (CPU generators keep 32 bits of a
# seed: 2^32 would give the original's draw again.)
FRESH_INIT_SEED_OFFSET = 1_000_003


def load_data(dataset: DatasetRef, device: torch.device | str = "cpu", speed: Optional[SpeedConfig] = None) -> Dataset:
    """The dataset on `device`, in the memory format of the speed settings: memoised per process in that format, so
    every node of a worker reads the same tensors (no per-node copy) and what is cached by them stays cached."""
    args = typed(DATASETS.get(dataset.name).config, dataset.args, "dataset.args")
    channels_last = speed is not None and speed.channels_last
    return load_dataset(dataset.name, args, device, dataset.limit_train, dataset.limit_test, channels_last)


def dataset_for(config: dict, device: torch.device | str = "cpu") -> Dataset:
    """The dataset a sweep's `dataset` section names (`{"dataset": {name, args, limit_train, limit_test}}`)."""
    return load_data(DatasetRef(**config["dataset"]), device)


def new_model(model: ModelRef, speed: SpeedConfig, data: Dataset, seed: int, device: torch.device) -> torch.nn.Module:
    """The architecture, initialised from `seed`, on `device`, set up by the speed settings."""
    args = typed(MODELS.get(model.name).config, model.args, "model.args")
    built = build_model(model.name, args, data.input_shape, data.num_classes, seed).to(device)
    return prepare_model(built, speed, device)


def node_model(config: DataNodeConfig, data: Dataset, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """The node's architecture, freshly initialised from `seed`."""
    return new_model(config.model, config.speed, data, seed, device)


def fresh_model(config: DataNodeConfig, data: Dataset, device: torch.device, seed: int) -> torch.nn.Module:
    """`retrain.init: fresh`, the REM reference's re-initialisation (src/utils.py `initialize_weights`, applied by
    `unlearn_func(model, "EU")`): PyTorch's default init drawn anew, conv and linear biases set to zero."""
    model = node_model(config, data, device, seed + FRESH_INIT_SEED_OFFSET)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.zero_()
    return model


def load_model(config: DataNodeConfig, data: Dataset, state: dict, device: torch.device) -> torch.nn.Module:
    """The node's architecture holding the weights `state`."""
    model = node_model(config, data, device)
    model.load_state_dict(state)
    return model


def split_tensors(ctx: RunContext) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation splits. Forget examples are scored against their training labels (true ones, or in a corrupted-data
    task the corrupted ones: forget accuracy is then how much of the corruption is left), canaries against the wrong
    labels they were trained with (canary accuracy is how much of that memorisation is left). A corrupted-data task
    adds the corruption's splits: every corrupted example against its true label (`corrupted`) and, for a trigger,
    the triggered test images against the target class (`triggered_test`; workloads/corruptions.py)."""
    d, fs = ctx.data, ctx.forget_set
    on = lambda idx: idx.to(d.x_train.device)
    splits = {
        "retain": (d.x_train[on(fs.retain)], d.y_train[on(fs.retain)]),
        "forget": (d.x_train[on(fs.forget)], d.y_train[on(fs.forget)]),
        "heldout_forget": (d.x_train[on(fs.heldout)], d.y_train[on(fs.heldout)]),
        "test": (d.x_test, d.y_test),
    }
    if len(fs.canaries):
        splits["canary"] = (d.x_train[on(fs.canaries)], fs.canary_labels.to(d.x_train.device))
    if fs.corruption is not None:
        splits |= fs.corruption.evaluation_splits(d)
    return splits


def training_recipe(train: TrainConfig, retrain: bool) -> tuple[TrainConfig, RetrainConfig, Callable]:
    """The recipe a training node runs (with `train.retrain`'s lr for a retrained baseline), its departures, and how
    its model starts (`node_model(config, data, device, seed)` or `fresh_model`)."""
    departures = train.retrain if retrain and train.retrain is not None else RetrainConfig()
    if departures.lr is not None:
        train = dataclasses.replace(train, lr=departures.lr)
    return train, departures, fresh_model if departures.init == "fresh" else node_model


def train_model(
    config: TrainNodeConfig, ctx: RunContext, index: Optional[torch.Tensor], retrain: bool = False
) -> NodeOutput:
    """A model trained from the config's seed by its `train` recipe on the training examples `index` (None: all),
    for the steps of the recipe's epochs over the *full* training set, as the reference counts every schedule;
    resumed from, and saved periodically to, the context's checkpoint when it has one. `retrain`: apply
    `train.retrain` (its lr, a fresh init, training in drop mode)."""
    d = ctx.data
    cfg, departures, start = training_recipe(config.train, retrain)
    model = start(config, d, ctx.device, config.seed)
    if index is None:  # the full training set as it is on the device: no copy of it
        x, y, ids = d.x_train, d.y_train, torch.arange(len(d.y_train), device=ctx.device)
    else:
        ids = index.to(ctx.device)
        x, y = d.x_train[ids], d.y_train[ids]
    selectors: list = []
    curve = train_classifier(
        model,
        x,
        y,
        cfg,
        seed=config.seed,
        augment=d.augment,
        epoch_size=len(d.y_train),
        ids=None if departures.tied_dropout == "drop" else ids,  # no indices: drop mode (tied_dropout.py)
        checkpoint=ctx.checkpoint,
        test=(d.x_test, d.y_test),
        selector_out=selectors,
    )
    test = evaluate(model, d.x_test, d.y_test, d.num_classes)
    selected = {"selected_step": selectors[0].best_step} if selectors else {}  # 0: no evaluation won, the last kept
    return NodeOutput(
        result={
            "train_examples": len(y),
            "steps": recipe_steps(cfg, len(d.y_train), len(y))[1],
            "test_acc": test["acc"],
            "precision": effective_precision(config.speed, ctx.device),
            **selected,
        },
        state=model.state_dict(),
        metrics={"test_acc": test["acc"], "test_loss": test["loss"]},
        curves={"train_loss": curve},
    )


def training_key_view(config: dict) -> dict:
    """`train_original` / `train_retrain` as keys see them: `train` without the fields added later at their old
    value."""
    return keyed_section(config, "train", TrainConfig)


def original_key_view(config: dict) -> dict:
    """`train_original` as keys see it: the retrained baseline's departures (`train.retrain`) are not the original's
    concern, so sweeps that differ only there share their originals."""
    view = training_key_view(config)
    return view | {"train": {k: v for k, v in view["train"].items() if k != "retrain"}}


def training_work(config: TrainNodeConfig, size: DataSize) -> Work:
    """`train_original` / `train_retrain`: the recipe's steps over the training set, then the test set scored (once,
    and at every evaluation of `select: best_test`)."""
    cfg = config.train
    steps = recipe_steps(cfg, size.train, size.train)[1]
    passes = math.ceil(steps / math.ceil(size.train / cfg.batch_size))
    evaluations = (passes - 1) // cfg.select_every if cfg.select == "best_test" else 0
    return Work(steps, cfg.batch_size, (1 + evaluations) * size.test)


def scoring_work(passes: int = 1) -> Callable[[DataNodeConfig, DataSize], Work]:
    """Nodes that only pass every training and test example forward, `passes` times."""
    return lambda config, size: Work(forward_examples=passes * (size.train + size.test))
