"""`population_unlearn`: a block of an unlearning setting's population. Member m is what `unlearn` computes with its
seed (workloads/population.py `member_seed`) from the same start model (the original, or a chained setting's start):
its own batch order, random labels and noise. Each member is prepared as `unlearn` prepares a run (its generator,
its weight edit, its streams: workloads/methods/base.py `prepare`); a method whose losses are pure functions of the
model's outputs (`vmappable`) then steps its members together as one vmapped ensemble, any other runs them one after
another in this node."""

from __future__ import annotations

from workloads.methods import METHODS, UnlearningMethod, frozen_copy, unlearn
from workloads.methods.base import prepare
from workloads.nodes.base import register_kind
from workloads.nodes.common import load_model
from workloads.nodes.configs import PopulationUnlearnNodeConfig, UnlearnNodeConfig
from workloads.nodes.population_common import block_work, population_output, vmap_refusal
from workloads.nodes.unlearn import unlearn_context, unlearn_key_view, unlearn_work
from workloads.population import Stacked, fit_vmapped, sequential_ensemble

HOOKS = ("before_step", "after_backward", "after_step")


def member_config(config: PopulationUnlearnNodeConfig, seed: int) -> UnlearnNodeConfig:
    """The `unlearn` config whose run member `seed` is."""
    shared = {k: getattr(config, k) for k in ("dataset", "model", "speed", "forget", "corruption", "method", "hparams")}
    return UnlearnNodeConfig(**shared, seed=seed)


def population_unlearn_work(config: PopulationUnlearnNodeConfig, size):
    return block_work(unlearn_work(member_config(config, 0), size), len(config.members.seeds), size)


def method_refusal(method: UnlearningMethod) -> str | None:
    if not type(method).vmappable or method.run is not None:
        return f"{type(method).name} is not marked vmappable (its losses read more than the model's outputs)"
    overridden = [h for h in HOOKS if getattr(type(method), h) is not getattr(UnlearningMethod, h)]
    return f"{type(method).name} has step hooks ({', '.join(overridden)})" if overridden else None


def step_together(members: list) -> Stacked:
    """Prepared members (method, model, context) stepped as one ensemble: every step each draws its own batches, the
    first member's method scores each of them (the methods are the same setting; the context's frozen original is
    shared), and one optimiser of the method's kind steps the stacked weights."""
    prepared = [prepare(method, model, ctx) for method, model, ctx in members]
    total, batches = prepared[0][0], [p[2] for p in prepared]
    method, _, ctx = members[0]
    stacked = Stacked.of([model for _, model, _ in members])
    optimizer = method.make_optimizer(stacked.holder)

    def before(step: int) -> None:
        ctx.step = step

    fit_vmapped(stacked, lambda: [b.draw() for b in batches], batches[0].loss_of, optimizer, None, total, before)
    return stacked


@register_kind(
    "population_unlearn",
    PopulationUnlearnNodeConfig,
    reads=("start", "original", "forget_scores"),
    reads_forget_set=True,
    work=population_unlearn_work,
    key_view=unlearn_key_view,
)
def run_population_unlearn(config: PopulationUnlearnNodeConfig, inputs, ctx):
    d, seeds = ctx.data, config.members.seeds
    original = frozen_copy(load_model(config, d, inputs["original"].state, ctx.device))
    start = inputs["start"].state
    members = []
    for seed in seeds:
        method = METHODS.get(config.method)(config.hparams)
        members.append((method, load_model(config, d, start, ctx.device), unlearn_context(method, ctx, original, seed)))
    reason = vmap_refusal(config.members, members[0][1], d.x_train[:2], method_refusal(members[0][0]))
    if reason is None:
        ensemble = step_together(members).ensemble(f"vmap: {len(seeds)} runs stepped as one ensemble")
    else:
        for method, model, unlearn_ctx in members:
            unlearn(method, model, unlearn_ctx)
        ensemble = sequential_ensemble(members[0][1], [model.state_dict() for _, model, _ in members], reason)
    return population_output(ensemble, ctx, config.members, {"steps": members[0][2].total_steps})
