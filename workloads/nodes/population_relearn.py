"""`population_relearn`: the relearning attack (workloads/relearn.py) on every member of a population block (its input
`models`, a block that kept its members' weights), member m attacked with seed `members.seeds[m]`: the attacker's set
for k, Adam with cosine decay for the recipe's steps of the full training set, as the `relearn` node trains. Only the
training is the relearn node's: no accuracy curve is kept, the members' outputs after the attack are (population.py).
The members train as one vmapped ensemble where the model allows, one after another otherwise."""

from __future__ import annotations

import dataclasses

from workloads.config import keyed_section
from workloads.nodes.base import Work, register_kind
from workloads.nodes.common import load_model
from workloads.nodes.configs import PopulationRelearnNodeConfig
from workloads.nodes.population_common import block_work, population_output, vmap_refusal
from workloads.population import Stacked, cross_entropy_loss, fit_vmapped, sequential_ensemble, unstack_state
from workloads.relearn import RelearnConfig
from workloads.relearn_sets import attacker_set, uses_corrupted_test
from workloads.speed import prepare_images
from workloads.train import BatchStream, adam_with_cosine, fit, generator_for, steps_for


def population_relearn_work(config: PopulationRelearnNodeConfig, size):
    cfg = config.relearn
    return block_work(
        Work(steps_for(cfg.epochs, size.train, cfg.batch_size), cfg.batch_size), len(config.members.seeds), size
    )


@register_kind(
    "population_relearn",
    PopulationRelearnNodeConfig,
    reads=("models", "forget_scores"),
    reads_forget_set=True,
    work=population_relearn_work,
    key_view=lambda config: keyed_section(config, "relearn", RelearnConfig),
)
def run_population_relearn(config: PopulationRelearnNodeConfig, inputs, ctx):
    cfg, d, seeds = config.relearn, ctx.data, config.members.seeds
    if d.x_corrupted_test is not None and uses_corrupted_test(cfg.relearn_set):  # the others' memory format
        d = dataclasses.replace(d, x_corrupted_test=prepare_images(d.x_corrupted_test, config.speed))
    stacked_state = inputs["models"].state
    if len(next(iter(stacked_state.values()))) != len(seeds):
        raise ValueError(f"population_relearn: {len(seeds)} attack seeds for a block of other size")
    nets = [load_model(config, d, unstack_state(stacked_state, m), ctx.device) for m in range(len(seeds))]
    target_class = getattr(config.forget, "target_class", None)
    x, y = attacker_set(d, ctx.forget_set, config.k, cfg.relearn_set, target_class)
    total = steps_for(cfg.epochs, len(d.y_train), cfg.batch_size)
    augment = d.augment if cfg.augment else None
    streams = [BatchStream(x, y, cfg.batch_size, generator_for(s), augment) for s in seeds]
    reason = vmap_refusal(config.members, nets[0], d.x_train[:2])
    if reason is None:
        stacked = Stacked.of(nets)
        optimizer, schedule = adam_with_cosine(stacked.holder, cfg.lr, cfg.weight_decay, total, cfg.final_lr / cfg.lr)
        fit_vmapped(stacked, lambda: [next(s) for s in streams], cross_entropy_loss, optimizer, schedule, total)
        ensemble = stacked.ensemble(f"vmap: {len(seeds)} attacks trained as one ensemble")
    else:
        for net, stream in zip(nets, streams):
            fit(net, stream, *adam_with_cosine(net, cfg.lr, cfg.weight_decay, total, cfg.final_lr / cfg.lr), total)
        ensemble = sequential_ensemble(nets[0], [net.state_dict() for net in nets], reason)
    return population_output(ensemble, ctx, config.members, {"steps": total, "k": config.k, "train_examples": len(y)})
