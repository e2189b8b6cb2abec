"""`population_train`: a block of a retrained population. Member m is what `train_retrain` computes with its seed
(workloads/population.py `member_seed`): the sweep's recipe from that seed's initial weights (or a fresh init, with
`train.retrain.init: fresh`) on the retain set, for the original's number of steps. The members train as one vmapped
ensemble where the model and recipe allow (no buffers that training moves, no dropout or autocast, `select: last`)
and one after another otherwise, the result saying which and why; either way each member's outputs (population.py)
are the block's artifact."""

from __future__ import annotations

import torch

from workloads.nodes.base import register_kind
from workloads.nodes.common import train_model, training_key_view, training_recipe, training_work
from workloads.nodes.configs import PopulationTrainNodeConfig, TrainNodeConfig
from workloads.nodes.population_common import block_work, member_context, population_output, vmap_refusal
from workloads.population import Stacked, cross_entropy_loss, fit_vmapped, sequential_ensemble
from workloads.train import BatchStream, generator_for, lr_factor, make_optimizer, recipe_steps


def member_config(config: PopulationTrainNodeConfig, seed: int) -> TrainNodeConfig:
    """The `train_retrain` config whose run member `seed` is."""
    return TrainNodeConfig(
        dataset=config.dataset,
        model=config.model,
        speed=config.speed,
        train=config.train,
        seed=seed,
        corruption=config.corruption,
        forget=config.forget,
    )


def population_train_work(config: PopulationTrainNodeConfig, size):
    return block_work(training_work(member_config(config, 0), size), len(config.members.seeds), size)


def train_vmapped(config: PopulationTrainNodeConfig, ctx, nets: list) -> Stacked:
    """The members as one ensemble, each drawing its batches from its own seeded stream as train_classifier does."""
    cfg, _, _ = training_recipe(config.train, retrain=True)
    d, index = ctx.data, ctx.forget_set.retain.to(ctx.device)
    x, y = d.x_train[index], d.y_train[index]
    nominal, total = recipe_steps(cfg, len(d.y_train), len(y))
    augment = d.augment if cfg.augment else None
    streams = [BatchStream(x, y, cfg.batch_size, generator_for(s), augment) for s in config.members.seeds]
    stacked = Stacked.of(nets)
    optimizer = make_optimizer(stacked.holder.parameters(), cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, nominal))
    fit_vmapped(stacked, lambda: [next(s) for s in streams], cross_entropy_loss, optimizer, schedule, total)
    return stacked


@register_kind(
    "population_train",
    PopulationTrainNodeConfig,
    reads=("forget_scores",),
    reads_forget_set=True,
    work=population_train_work,
    key_view=training_key_view,
)
def run_population_train(config: PopulationTrainNodeConfig, inputs, ctx):
    seeds = config.members.seeds
    cfg, _, start = training_recipe(config.train, retrain=True)
    new = lambda seed: start(member_config(config, seed), ctx.data, ctx.device, seed)
    probe = new(seeds[0])
    selects = "select: best_test keeps a checkpoint per member" if cfg.select != "last" else None
    reason = vmap_refusal(config.members, probe, ctx.data.x_train[:2], selects)
    if reason is None:
        nets = [probe, *(new(s) for s in seeds[1:])]
        ensemble = train_vmapped(config, ctx, nets).ensemble(f"vmap: {len(seeds)} members trained as one ensemble")
    else:
        solo = member_context(ctx)
        states = [train_model(member_config(config, s), solo, ctx.forget_set.retain, retrain=True).state for s in seeds]
        ensemble = sequential_ensemble(probe, states, reason)
    steps = recipe_steps(cfg, len(ctx.data.y_train), len(ctx.forget_set.retain))[1]
    return population_output(ensemble, ctx, config.members, {"steps": steps})
