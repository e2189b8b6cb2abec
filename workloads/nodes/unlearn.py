"""`unlearn`: an unlearning method (by registry name, with its hparams) applied to its start model (the original,
or another method's unlearned model: an initial safeguard), with a frozen copy of the original at hand. Canaries
are forgotten together with the forget set."""

import torch

from workloads.config import keyed
from workloads.methods import METHODS, UnlearnContext, frozen_copy, unlearn
from workloads.nodes.base import NodeOutput, Work, register_kind
from workloads.nodes.common import load_model, split_tensors
from workloads.nodes.configs import UnlearnNodeConfig
from workloads.train import steps_for


def unlearn_work(config: UnlearnNodeConfig, size):
    hparams = config.hparams
    if not hasattr(hparams, "epochs"):  # a weight edit: no steps, a pass or two over the data
        return Work(forward_examples=size.train)
    steps = steps_for(hparams.epochs, size.train, hparams.batch_size)
    batches = METHODS.get(config.method).batches_per_step(hparams)
    return Work(batches * steps, hparams.batch_size, size.train + size.test)


def unlearn_key_view(config):
    """The method's version enters the key only once bumped past 1, so the keys of every other method stay."""
    method_cls = METHODS.get(config["method"])
    view = {**config, "hparams": keyed(method_cls.Config, config["hparams"])}
    return view | ({"method_version": method_cls.version} if method_cls.version > 1 else {})


def unlearn_context(method, ctx, original, seed: int) -> UnlearnContext:
    """What a method unlearns with: the frozen original, the retain set (empty for a method that declares it uses
    none, `uses_retain_set = False`: such a method never sees a retain example), the forget set (canaries with it),
    the epoch convention's training-set size and the seed of its batches and draws."""
    d, splits = ctx.data, split_tensors(ctx)
    forget_x, forget_y = splits["forget"]
    if "canary" in splits:
        forget_x, forget_y = torch.cat([forget_x, splits["canary"][0]]), torch.cat([forget_y, splits["canary"][1]])
    retain_x, retain_y = splits["retain"]
    retain_ids = ctx.forget_set.retain.to(ctx.device)
    if not method.uses_retain_set:
        retain_x, retain_y, retain_ids = retain_x[:0], retain_y[:0], retain_ids[:0]
    return UnlearnContext(
        original,
        retain_x,
        retain_y,
        forget_x,
        forget_y,
        d.num_classes,
        len(d.y_train),
        seed,
        augment=d.augment if method.cfg.augment else None,
        retain_ids=retain_ids,
    )


@register_kind(
    "unlearn",
    UnlearnNodeConfig,
    reads=("start", "original", "forget_scores"),
    reads_forget_set=True,
    work=unlearn_work,
    key_view=unlearn_key_view,
)
def run_unlearn(config: UnlearnNodeConfig, inputs, ctx):
    method = METHODS.get(config.method)(config.hparams)
    d = ctx.data
    model = load_model(config, d, inputs["start"].state, ctx.device)
    original = frozen_copy(load_model(config, d, inputs["original"].state, ctx.device))
    unlearn_ctx = unlearn_context(method, ctx, original, config.seed)
    curve = unlearn(method, model, unlearn_ctx)
    return NodeOutput(
        result={"steps": unlearn_ctx.total_steps, **unlearn_ctx.report},
        state=model.state_dict(),
        curves={"unlearn_loss": curve},
    )
