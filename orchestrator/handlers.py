"""One handler per node kind: (config, inputs, context) -> NodeOutput. They call into `workloads/` by registry
name and never know what a particular method does. Bump a handler's `version` only when its semantics change:
the version is part of every key it produces."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from orchestrator.spec import checked
from workloads.data import DATASETS, Dataset, load_dataset
from workloads.forget import ForgetSet
from workloads.memorization import (MemorizationConfig, estimate_memorization, memorization_from, memorization_from_cscores,
                                    shard_models)
from workloads.methods import METHODS, UnlearnContext, frozen_copy, unlearn
from workloads.models import MODELS, build_model
from workloads.relearn import RelearnConfig, relearn, uses_corrupted_test
from workloads.speed import SpeedConfig, effective_precision, prepare_images, prepare_model
from workloads.train import TrainConfig, evaluate, train_classifier
from workloads.mia import loss_attack, per_example_loss
from workloads.weightspace import LMCConfig, l2_distance, linear_mode_connectivity


@dataclass
class NodeOutput:
    result: dict  # JSON: what the summary and later sweeps read back
    state: Optional[dict] = None  # a model's state_dict, stored as the checkpoint
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list] = field(default_factory=dict)  # name -> [[step, value], ...]
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # extra tensor artifacts (memorization scores)


@dataclass
class InputNode:
    """A finished input: its result, and its checkpoint loaded on first use."""

    result: dict
    load_state: Callable[[], dict]
    load_tensors: Callable[[], dict] = dict

    @property
    def state(self) -> dict:
        return self.load_state()


@dataclass
class RunContext:
    device: torch.device
    data: Dataset  # on the device
    forget_set: Optional[ForgetSet]
    config: dict


def new_model(config: dict, data: Dataset, seed: int, device: torch.device) -> torch.nn.Module:
    """The node's architecture, initialised from `seed`, on `device`, set up by its speed config."""
    entry = MODELS.get(config["model"]["name"])
    args = checked(entry.config, config["model"]["args"], "model.args")
    model = build_model(config["model"]["name"], args, data.input_shape, data.num_classes, seed).to(device)
    return prepare_model(model, speed_of(config), device)


def load_model(config: dict, data: Dataset, state: dict, device: torch.device) -> torch.nn.Module:
    model = new_model(config, data, 0, device)
    model.load_state_dict(state)
    return model


def speed_of(config: dict) -> SpeedConfig:
    return checked(SpeedConfig, config.get("speed", {}), "speed")


def split_tensors(ctx: RunContext) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Evaluation splits. Forget examples are scored against their true labels, canaries against the wrong labels
    they were trained with (canary accuracy is how much of that memorisation is left)."""
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
    return splits


def run_memorization(config, inputs, ctx):
    """Per-example memorization scores, from a C-score file or estimated from subset models. With
    `memorization.shards` = n > 1 the DAG has n shard nodes (config `shard`: index, count), each training a contiguous
    block of the models and returning their `included`/`correct` rows, and the memorization node (inputs shard_0 ...
    shard_{n-1}) concatenates them in shard order and computes the scores."""
    cfg = checked(MemorizationConfig, config["memorization"], "memorization")
    d = ctx.data
    how = {"mode": "scores_file"}
    new = lambda seed: new_model(config, d, seed, ctx.device)
    if "shard" in config:
        models = shard_models(cfg.num_models, config["shard"]["count"], config["shard"]["index"])
        out = estimate_memorization(new, d.x_train, d.y_train, cfg, d.augment, models)
        return NodeOutput(result={"models": [models.start, models.stop], "mode": out["mode"], "message": out["message"]},
                          tensors={"included": out["included"].cpu(), "correct": out["correct"].cpu()})
    if cfg.scores_file is not None:
        scores = memorization_from_cscores(cfg.scores_file, d.y_train)
    elif inputs:
        shards = [inputs[f"shard_{i}"] for i in range(len(inputs))]
        parts = [shard.load_tensors() for shard in shards]
        included, correct = (torch.cat([part[name] for part in parts]) for name in ("included", "correct"))
        if len(included) != cfg.num_models:
            raise ValueError(f"memorization.shards: the shards hold {len(included)} models, not num_models={cfg.num_models}")
        scores = memorization_from(included, correct)
        how = {"mode": "+".join(dict.fromkeys(shard.result["mode"] for shard in shards)),
               "message": f"{len(shards)} shards: " + "; ".join(dict.fromkeys(shard.result["message"] for shard in shards))}
    else:
        out = estimate_memorization(new, d.x_train, d.y_train, cfg, d.augment)
        scores = out["scores"].cpu()
        how = {"mode": out.get("mode"), "message": out.get("message")}  # vmapped, or sequential and why
    return NodeOutput(result={"mean": scores.mean().item(), "num_examples": len(scores), **how},
                      metrics={"mean_memorization": scores.mean().item(), "frac_above_0.5": (scores > 0.5).float().mean().item()},
                      tensors={"scores": scores})


def _train(config, ctx, index: Optional[torch.Tensor]) -> NodeOutput:
    cfg = checked(TrainConfig, config["train"], "train")
    d = ctx.data
    model = new_model(config, d, config["seed"], ctx.device)
    x, y = (d.x_train, d.y_train) if index is None else (d.x_train[index.to(ctx.device)], d.y_train[index.to(ctx.device)])
    curve = train_classifier(model, x, y, cfg, seed=config["seed"], augment=d.augment)
    test = evaluate(model, d.x_test, d.y_test, d.num_classes)
    precision = effective_precision(speed_of(config), ctx.device)
    return NodeOutput(result={"train_examples": len(y), "test_acc": test["acc"], "precision": precision}, state=model.state_dict(),
                      metrics={"test_acc": test["acc"], "test_loss": test["loss"]}, curves={"train_loss": curve})


def run_train_original(config, inputs, ctx):
    return _train(config, ctx, None)


def run_train_retrain(config, inputs, ctx):
    return _train(config, ctx, ctx.forget_set.retain)


def run_evaluate(config, inputs, ctx):
    model = load_model(config, ctx.data, inputs["model"].state, ctx.device)
    result: dict[str, Any] = {}
    splits = split_tensors(ctx)
    for split, (x, y) in splits.items():
        metrics = evaluate(model, x, y, ctx.data.num_classes)
        result[f"{split}_acc"], result[f"{split}_loss"] = metrics["acc"], metrics["loss"]
        result[f"{split}_per_class_acc"] = metrics["per_class_acc"]
    result["tow"] = result["retain_acc"] * (1 - result["forget_acc"]) * result["test_acc"]
    attack = loss_attack(per_example_loss(model, *splits["forget"]), per_example_loss(model, *splits["test"]), seed=0)
    result["mia_acc"], result["mia_auc"] = attack["acc"], attack["auc"]
    scalars = {k: v for k, v in result.items() if isinstance(v, float)}
    return NodeOutput(result=result, metrics=scalars)


def run_unlearn(config, inputs, ctx):
    method_cls = METHODS.get(config["method"])
    method = method_cls(checked(method_cls.Config, config["hparams"], f"{config['method']}.hparams"))
    d, splits = ctx.data, split_tensors(ctx)
    model = load_model(config, d, inputs["start"].state, ctx.device)
    original = frozen_copy(load_model(config, d, inputs["original"].state, ctx.device))
    forget_x, forget_y = splits["forget"]
    if "canary" in splits:  # canaries are forgotten together with the forget set
        forget_x, forget_y = torch.cat([forget_x, splits["canary"][0]]), torch.cat([forget_y, splits["canary"][1]])
    unlearn_ctx = UnlearnContext(original, *splits["retain"], forget_x, forget_y, d.num_classes, len(d.y_train), config["seed"])
    curve = unlearn(method, model, unlearn_ctx)
    return NodeOutput(result={"steps": unlearn_ctx.total_steps}, state=model.state_dict(), curves={"unlearn_loss": curve})


def run_relearn(config, inputs, ctx):
    """The attacker's set is built from the data, the forget set, k and the target class alone, so every model
    (unlearned, retrained control, original) is attacked with the same examples."""
    cfg = checked(RelearnConfig, config["relearn"], "relearn")
    d = ctx.data
    if d.x_corrupted_test is not None and uses_corrupted_test(cfg.relearn_set):  # same memory format as the rest
        d = dataclasses.replace(d, x_corrupted_test=prepare_images(d.x_corrupted_test, speed_of(config)))
    model = load_model(config, d, inputs["model"].state, ctx.device)
    target_class = (config.get("forget") or {}).get("target_class")
    out = relearn(model, d, ctx.forget_set, config["k"], cfg, config["seed"], target_class)
    return NodeOutput(result=out, metrics={"heldout_forget_acc": out["heldout_forget_acc"], "test_acc": out["test_acc"]},
                      curves={"heldout_forget_acc": out["curve"]})


def run_distance(config, inputs, ctx):
    a, b = inputs["a"].state, inputs["b"].state
    out = l2_distance(new_model(config, ctx.data, 0, torch.device("cpu")), a, b)
    return NodeOutput(result=out, metrics={"l2": out["l2"]})


def run_interpolate(config, inputs, ctx):
    model = new_model(config, ctx.data, 0, ctx.device)
    splits = {k: v for k, v in split_tensors(ctx).items() if k != "heldout_forget"}
    lmc = checked(LMCConfig, config["lmc"], "lmc")
    recalibrate = splits["retain"][0] if lmc.recompute_bn else None
    out = linear_mode_connectivity(model, inputs["a"].state, inputs["b"].state, splits, ctx.data.num_classes,
                                   lmc.stride, recalibrate_on=recalibrate)
    curves = {f"lmc_{name}": [[i, v] for i, v in enumerate(values)] for name, values in out.items() if name not in ("t", "loss_barrier")}
    return NodeOutput(result=out, metrics={"loss_barrier": out["loss_barrier"]}, curves=curves)


@dataclass(frozen=True)
class Handler:
    run: Callable[[dict, dict, RunContext], NodeOutput]
    version: int = 1


HANDLERS: dict[str, Handler] = {
    "memorization": Handler(run_memorization),
    "train_original": Handler(run_train_original),
    "train_retrain": Handler(run_train_retrain),
    "evaluate": Handler(run_evaluate, version=2),  # 2: adds membership inference
    "unlearn": Handler(run_unlearn),
    "relearn": Handler(run_relearn, version=2),  # 2: every relearn set; results name their set and k
    "distance": Handler(run_distance),
    "interpolate": Handler(run_interpolate),
}


def dataset_for(config: dict, device: torch.device | str = "cpu", speed: Optional[SpeedConfig] = None) -> Dataset:
    """The node's dataset on `device` (memoised per process), from the `dataset` section of its config."""
    spec = config["dataset"]
    entry = DATASETS.get(spec["name"])
    data = load_dataset(spec["name"], checked(entry.config, spec["args"], "dataset.args"), device,
                        spec.get("limit_train"), spec.get("limit_test"))
    if speed is not None and speed.channels_last and data.x_train.dim() == 4:
        data = dataclasses.replace(data, x_train=prepare_images(data.x_train, speed), x_test=prepare_images(data.x_test, speed))
    return data
