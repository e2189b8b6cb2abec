"""`memorization`: per-example memorization scores, from a C-score file or estimated from subset models (Feldman &
Zhang; workloads/memorization.py). With `memorization.shards` = n > 1 the DAG has n shard nodes of this kind (config
`shard`: index, count), each training a contiguous block of the models and returning their `included`/`correct`
rows, and the memorization node (inputs shard_0 ... shard_{n-1}) concatenates them in shard order and scores."""

import torch

from workloads.config import keyed_section, typed
from workloads.memorization import (
    MemorizationConfig,
    estimate_memorization,
    memorization_from,
    memorization_from_cscores,
    shard_models,
)
from workloads.nodes.base import NodeOutput, Work, register_kind
from workloads.nodes.common import new_model
from workloads.train import TrainConfig, steps_for


def memorization_work(config, size):
    cfg = typed(MemorizationConfig, config["memorization"], "memorization")
    if cfg.scores_file is not None or ("shard" not in config and cfg.shards > 1):  # read, or assembled from shards
        return Work()
    models = (
        len(shard_models(cfg.num_models, config["shard"]["count"], config["shard"]["index"]))
        if "shard" in config
        else cfg.num_models
    )
    subset = round(cfg.subset_fraction * size.train)
    return Work(
        models * steps_for(cfg.train.epochs, subset, cfg.train.batch_size), cfg.train.batch_size, models * size.train
    )


def memorization_key_view(config):
    """`memorization.train` without the fields added later at their old value (the subset models train with Adam)."""
    return {**config, "memorization": keyed_section(config["memorization"], "train", TrainConfig)}


@register_kind("memorization", reads=("shard_*",), work=memorization_work, key_view=memorization_key_view)
def run_memorization(config, inputs, ctx):
    cfg = typed(MemorizationConfig, config["memorization"], "memorization")
    d = ctx.data
    new = lambda seed: new_model(config, d, seed, ctx.device)
    if "shard" in config:
        models = shard_models(cfg.num_models, config["shard"]["count"], config["shard"]["index"])
        out = estimate_memorization(new, d.x_train, d.y_train, cfg, d.augment, models)
        return NodeOutput(
            result={"models": [models.start, models.stop], "mode": out["mode"], "message": out["message"]},
            tensors={"included": out["included"].cpu(), "correct": out["correct"].cpu()},
        )
    how = {"mode": "scores_file"}
    if cfg.scores_file is not None:
        scores = memorization_from_cscores(cfg.scores_file, d.y_train)
    elif inputs:
        shards = [inputs[f"shard_{i}"] for i in range(len(inputs))]
        parts = [shard.load_tensors() for shard in shards]
        included, correct = (torch.cat([part[name] for part in parts]) for name in ("included", "correct"))
        if len(included) != cfg.num_models:
            raise ValueError(
                f"memorization.shards: the shards hold {len(included)} models, not num_models={cfg.num_models}"
            )
        scores = memorization_from(included, correct)
        how = {
            "mode": "+".join(dict.fromkeys(shard.result["mode"] for shard in shards)),
            "message": f"{len(shards)} shards: "
            + "; ".join(dict.fromkeys(shard.result["message"] for shard in shards)),
        }
    else:
        out = estimate_memorization(new, d.x_train, d.y_train, cfg, d.augment)
        scores = out["scores"].cpu()
        how = {"mode": out.get("mode"), "message": out.get("message")}  # vmapped, or sequential and why
    return NodeOutput(
        result={"mean": scores.mean().item(), "num_examples": len(scores), **how},
        metrics={"mean_memorization": scores.mean().item(), "frac_above_0.5": (scores > 0.5).float().mean().item()},
        tensors={"scores": scores},
    )
