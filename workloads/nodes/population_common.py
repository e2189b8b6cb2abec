"""What the population kinds share (workloads/population.py has the members, vmapped training and outputs): the
splits every member is scored on (clean images), when members may not train as one ensemble, the node output every
block returns and the plan's estimate of a block's work."""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from torch import nn

from workloads.memorization import Ensemble
from workloads.nodes.base import NodeOutput, RunContext, Work
from workloads.nodes.common import split_tensors
from workloads.nodes.configs import Members
from workloads.population import ensemble_state, member_outputs, why_not_vmapped

SPLITS = ("forget", "retain", "test", "heldout_forget")


def member_context(ctx: RunContext) -> RunContext:
    """The node's context for one member's solo run: no training checkpoint (the node's file is the block's)."""
    return dataclasses.replace(ctx, checkpoint=None)


def vmap_refusal(members: Members, model: nn.Module, x: torch.Tensor, also: Optional[str] = None) -> Optional[str]:
    """Why the block's members must train one after another (None: they train as one vmapped ensemble)."""
    if not members.vectorize:
        return "vectorize is off"
    if len(members.seeds) < 2:
        return "a block of one member"
    return also or why_not_vmapped(model, x)


def population_output(ensemble: Ensemble, ctx: RunContext, members: Members, extra: dict) -> NodeOutput:
    """Each member's outputs (tensors), the members' stacked weights if kept (the checkpoint), and per-member
    accuracies in the result."""
    splits = {name: tensors for name, tensors in split_tensors(ctx).items() if name in SPLITS}
    tensors = member_outputs(ensemble, splits, members.outputs)
    fs = ctx.forget_set
    tensors["heldout"] = torch.isin(fs.forget, fs.heldout)  # which forget rows no relearning attack trains on
    accuracy = {f"{split}_acc": tensors[f"acc_{split}"].tolist() for split in SPLITS}
    return NodeOutput(
        result={"seeds": list(members.seeds), "mode": ensemble.mode, "message": ensemble.message, **accuracy, **extra},
        state=ensemble_state(ensemble) if members.outputs.keep_models else None,
        metrics={name: sum(values) / len(values) for name, values in accuracy.items()},
        tensors=tensors,
    )


def block_work(per_member: Work, members: int, size) -> Work:
    """A block's work: each member's, and each member scored on the whole training and test sets."""
    return Work(
        per_member.train_steps * members,
        per_member.batch_size,
        (per_member.forward_examples + size.train + size.test) * members,
    )
