"""`memorization`: per-example memorization scores, from a C-score file or estimated from subset models (Feldman &
Zhang; workloads/memorization.py). With `memorization.shards` = n > 1 the DAG has n shard nodes of this kind (config
`shard`: index, count), each training a contiguous block of the models and returning their `included`/`correct`
rows, and the memorization node (inputs shard_0 ... shard_{n-1}) concatenates them in shard order and scores."""

import torch

from workloads.config import keyed_section
from workloads.memorization import (
    estimate_memorization,
    memorization_from,
    memorization_from_cscores,
    shard_models,
)
from workloads.nodes.base import NodeOutput, Work, register_kind
from workloads.nodes.common import node_model
from workloads.nodes.configs import MemorizationNodeConfig
from workloads.train import TrainConfig, steps_for


def memorization_work(config: MemorizationNodeConfig, size):
    cfg, shard = config.memorization, config.shard
    if cfg.scores_file is not None or (shard is None and cfg.shards > 1):  # read, or assembled from shards
        return Work()
    models = cfg.num_models if shard is None else len(shard_models(cfg.num_models, shard.count, shard.index))
    subset = round(cfg.subset_fraction * size.train)
    return Work(
        models * steps_for(cfg.train.epochs, subset, cfg.train.batch_size), cfg.train.batch_size, models * size.train
    )


def memorization_key_view(config):
    """`memorization.train` without the fields added later at their old value (the subset models train with Adam)."""
    return {**config, "memorization": keyed_section(config["memorization"], "train", TrainConfig)}


@register_kind(
    "memorization", MemorizationNodeConfig, reads=("shard_*",), work=memorization_work, key_view=memorization_key_view
)
def run_memorization(config: MemorizationNodeConfig, inputs, ctx):
    cfg, d = config.memorization, ctx.data
    new = lambda seed: node_model(config, d, ctx.device, seed)
    if config.shard is not None:
        models = shard_models(cfg.num_models, config.shard.count, config.shard.index)
        out = estimate_memorization(new, d.x_train, d.y_train, cfg, d.augment, models)
        return NodeOutput(
            result={"models": [models.start, models.stop], "mode": out["mode"], "message": out["message"]},
            tensors={"included": out["included"].cpu(), "correct": out["correct"].cpu()},
        )
    how = {"mode": "scores_file"}
    if cfg.scores_file is not None:
        scores = memorization_from_cscores(cfg.scores_file, d.y_train)
    elif inputs:
        scores, how = merged_shards([inputs[f"shard_{i}"] for i in range(len(inputs))], cfg.num_models)
    else:
        out = estimate_memorization(new, d.x_train, d.y_train, cfg, d.augment)
        scores = out["scores"].cpu()
        how = {"mode": out.get("mode"), "message": out.get("message")}  # vmapped, or sequential and why
    return NodeOutput(
        result={"mean": scores.mean().item(), "num_examples": len(scores), **how},
        metrics={"mean_memorization": scores.mean().item(), "frac_above_0.5": (scores > 0.5).float().mean().item()},
        tensors={"scores": scores},
    )


def merged_shards(shards: list, num_models: int) -> tuple[torch.Tensor, dict]:
    """The scores of the shards' models together, and how they were computed."""
    parts = [shard.load_tensors() for shard in shards]
    included, correct = (torch.cat([part[name] for part in parts]) for name in ("included", "correct"))
    if len(included) != num_models:
        raise ValueError(f"memorization.shards: the shards hold {len(included)} models, not num_models={num_models}")
    how = {
        "mode": "+".join(dict.fromkeys(shard.result["mode"] for shard in shards)),
        "message": f"{len(shards)} shards: " + "; ".join(dict.fromkeys(shard.result["message"] for shard in shards)),
    }
    return memorization_from(included, correct), how
