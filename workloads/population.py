"""Populations of models for distributional evaluation: which members a node computes, how several of them train as
one vmapped ensemble, and what each keeps.

Members. A population is N members; member m of a role takes the seed `first_seed + 3 m + role` (role 0: the
retrained reference population, 1: the independent retrained population, the null and the `retrain` method's row,
2: every unlearning setting's runs), so the three never share a seed and every population grows by adding members
whose seeds no earlier member had. Relearning attacks on a member draw from its own model's seed. The planner cuts
a population into blocks of `block` consecutive members, one node each, at fixed boundaries: growing N from 32 to 64
at block 16 adds two nodes and reuses the first two.

Vmapped training. `fit_vmapped` trains M models of one architecture as one ensemble (torch.func: stack_module_state,
then vmap over functional_call, as the memorization estimate does): one optimiser over the stacked (M, ...)
parameters and the sum of the members' own losses, which is each member's own optimiser step (Adam, SGD with
momentum and weight decay act element-wise, and member m's slice of the gradient of the sum is its own gradient);
each member draws its batches from its own stream, exactly as its solo run draws them. So a member trained in any
block, vmapped or one at a time, is its solo run's model up to the order of float operations
(tests/test_population.py). A model whose training mutates buffers, draws dropout, or runs under autocast cannot
join such an ensemble (`why_not_vmapped`); then the members train one after another in the same node.

Outputs. Per member: logits on every forget example, on a seeded sample of `sample` retain and of `sample` test
examples (all of them when the split is smaller), and accuracy on the whole forget, held-out forget, retain and test
splits; `keep_models` also keeps the members' weights (one stacked state_dict per node), which a relearning attack
on the population needs and the scores do not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from workloads.memorization import Ensemble, why_not_vectorized
from workloads.models.tied_dropout import tied_layers

ROLES = {"reference": 0, "independent": 1, "unlearned": 2}


@dataclass
class PopulationOutputs:
    """What each member of a population node keeps (`population.outputs`)."""

    sample: int = 1000  # retain and test examples whose logits are kept, drawn once from `sample_seed`
    sample_seed: int = 0
    keep_models: bool = False  # the members' weights too (a relearning attack on the population needs them)


def member_seed(first_seed: int, role: str, member: int) -> int:
    return first_seed + 3 * member + ROLES[role]


def member_blocks(members: int, block: int) -> list[range]:
    """Consecutive blocks of `block` members (the last one shorter), at boundaries that do not move as N grows."""
    return [range(start, min(start + block, members)) for start in range(0, members, block)]


def why_not_vmapped(model: nn.Module, x: torch.Tensor) -> Optional[str]:
    """None if the model's training step is a pure function of its parameters and the batch; else why not."""
    if getattr(model, "autocast_dtype", None) is not None:
        return "the model runs under autocast (speed.precision), whose loss scaling is per model"
    if tied_layers(model):
        return "the model has example-tied dropout, whose masks follow each batch's training-set indices"
    return why_not_vectorized(model, x)


class Bound(nn.Module):
    """A model's architecture holding one member's (possibly vmapped) parameters: `model(x)` inside a method's loss
    runs the member. Only its forward is the member's; its `.parameters()` are not."""

    def __init__(self, base: nn.Module, params: dict, buffers: dict):
        super().__init__()
        self.base = base
        object.__setattr__(self, "member", (params, buffers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, self.member, (x,))


def cross_entropy_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The training loss of `fit`: mean cross-entropy of one batch."""
    return F.cross_entropy(model(batch[0]), batch[1])


def _stacked(drawn: list[Any]) -> tuple[Any, list[int], list[torch.Tensor], list[Any]]:
    """The members' batches (same structure each) as one structure of stacked tensors: (spec, positions of the
    tensor leaves, the stacked tensors, every leaf of the first member)."""
    flat = [tree_flatten(item) for item in drawn]
    leaves, spec = flat[0]
    positions = [i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)]
    for other, other_spec in flat[1:]:
        if other_spec != spec or any(other[i] != leaves[i] for i in range(len(leaves)) if i not in positions):
            raise ValueError("the members drew batches of different structure in the same step")
    return spec, positions, [torch.stack([f[0][i] for f in flat]) for i in positions], leaves


def member_losses(base: nn.Module, params: dict, buffers: dict, drawn: list[Any], loss: Callable) -> torch.Tensor:
    """(M,) each member's loss of its own batch, computed as one vmapped call of `loss(model, batch)`."""
    spec, positions, stacked, leaves = _stacked(drawn)

    def one(p, b, *tensors):
        values = list(leaves)
        for i, t in zip(positions, tensors):
            values[i] = t
        return loss(Bound(base, p, b), tree_unflatten(values, spec))

    return vmap(one)(params, buffers, *stacked)


@dataclass
class Stacked:
    """M models' parameters stacked (M, ...) as leaves an optimiser can own, their buffers, and the architecture."""

    base: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    holder: nn.ParameterList

    @classmethod
    def of(cls, nets: list[nn.Module]) -> Stacked:
        params, buffers = stack_module_state(nets)
        holder = nn.ParameterList(params.values())  # the same storage, as Parameters, for the optimiser
        return cls(copy.deepcopy(nets[0]).train(), dict(zip(params, holder)), buffers, holder)

    def ensemble(self, message: str) -> Ensemble:
        return Ensemble(self.base, {k: v.detach() for k, v in self.params.items()}, self.buffers, "vmap", message)


def fit_vmapped(
    stacked: Stacked, draw: Callable[[], list[Any]], loss: Callable, optimizer, schedule, total: int, before=None
) -> None:
    """`total` steps of the members together: each step every member draws its batch (`draw`), the sum of their
    losses is backpropagated once, and the optimiser (and schedule, if any) steps over the stacked parameters.
    `before(step)` runs first in each step (0-based)."""
    for step in range(total):
        if before is not None:
            before(step)
        losses = member_losses(stacked.base, stacked.params, stacked.buffers, draw(), loss)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()


def stack_states(states: list[dict]) -> dict[str, torch.Tensor]:
    """Members' state_dicts as one state_dict of stacked (M, ...) tensors."""
    return {name: torch.stack([s[name] for s in states]) for name in states[0]}


def unstack_state(stacked: dict[str, torch.Tensor], member: int) -> dict[str, torch.Tensor]:
    return {name: value[member] for name, value in stacked.items()}


def sequential_ensemble(base: nn.Module, states: list[dict], why: str) -> Ensemble:
    """Members trained one after another, as an Ensemble (scored one at a time, in eval mode)."""
    stacked = stack_states(states)
    names = dict(base.named_parameters())
    params = {k: v for k, v in stacked.items() if k in names}
    buffers = {k: v for k, v in stacked.items() if k not in names}
    return Ensemble(base, params, buffers, "sequential", f"sequential: {why}")


def ensemble_state(ensemble: Ensemble) -> dict[str, torch.Tensor]:
    """The stacked state_dict of an ensemble, on the CPU."""
    return {k: v.detach().cpu() for k, v in {**ensemble.params, **ensemble.buffers}.items()}


def sample_index(size: int, sample: int, seed: int) -> torch.Tensor:
    """A seeded, sorted choice of `sample` of `size` positions (all of them when there are no more)."""
    if size <= sample:
        return torch.arange(size)
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:sample].sort().values


@torch.no_grad()
def member_outputs(ensemble: Ensemble, splits: dict, outputs: PopulationOutputs) -> dict[str, torch.Tensor]:
    """Per member (rows): logits on the forget set, the retain sample and the test sample; accuracy on each whole
    split; the labels and sample positions the logits belong to. `splits`: name -> (x, y) for forget, retain, test
    and heldout_forget."""
    out: dict[str, torch.Tensor] = {}
    for split, (x, y) in splits.items():
        logits = ensemble.logits(x) if len(y) else None
        out[f"acc_{split}"] = (
            (logits.argmax(2) == y).double().mean(1).cpu() if logits is not None else torch.full((len(ensemble),), 0.0)
        )
        if split == "heldout_forget":
            continue
        keep = torch.arange(len(y)) if split == "forget" else sample_index(len(y), outputs.sample, outputs.sample_seed)
        where = keep.to(y.device)
        out[f"logits_{split}"] = (logits[:, where] if logits is not None else torch.zeros(len(ensemble), 0, 0)).cpu()
        out[f"labels_{split}"], out[f"index_{split}"] = y[where].cpu(), keep
    return out
