"""`population_score`: every registered distributional score (workloads/distributional.py) of a candidate population
against the reference one. Inputs `candidate_0`, `candidate_1`, ... and `reference_0`, ... are the two populations'
blocks in member order; the first `members` of each are scored. It trains nothing: it reads the blocks' outputs, so
a new score, or new score options, reuses every member. The per-example epsilon and KLoM values are its artifact."""

from __future__ import annotations

import torch

from workloads.distributional import score_populations
from workloads.nodes.base import NodeOutput, Work, register_kind
from workloads.nodes.configs import PopulationScoreNodeConfig

PER_MEMBER = ("logits_", "acc_")  # output tensors with one row per member; the rest are the same for every block


def population(blocks: list[dict], members: int) -> dict[str, torch.Tensor]:
    """The blocks' outputs as one population of its first `members` members."""
    out = {}
    for name, first in blocks[0].items():
        if name.startswith(PER_MEMBER):
            out[name] = torch.cat([block[name] for block in blocks])[:members]
        else:
            if any(not torch.equal(block[name], first) for block in blocks[1:]):
                raise ValueError(f"population_score: the blocks disagree on {name}: not one population's members")
            out[name] = first
    if len(out["acc_test"]) < members:
        raise ValueError(f"population_score: the blocks hold {len(out['acc_test'])} members, not {members}")
    return out


def read(inputs: dict, role: str, members: int) -> dict[str, torch.Tensor]:
    count = sum(1 for name in inputs if name.startswith(f"{role}_"))
    return population([inputs[f"{role}_{i}"].load_tensors() for i in range(count)], members)


@register_kind(
    "population_score",
    PopulationScoreNodeConfig,
    reads=("candidate_*", "reference_*"),
    work=lambda config, size: Work(),
)
def run_population_score(config: PopulationScoreNodeConfig, inputs, ctx):
    candidate, reference = read(inputs, "candidate", config.members), read(inputs, "reference", config.members)
    numbers, tensors = score_populations(candidate, reference, config.score, config.forget_rows)
    numbers |= {"members": config.members, "forget_rows": config.forget_rows}
    metrics = {k: v for k, v in numbers.items() if isinstance(v, float)}
    return NodeOutput(result=numbers, metrics=metrics, tensors={k: v.cpu() for k, v in tensors.items()})
