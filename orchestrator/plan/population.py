"""Distributional evaluation in the DAG (the sweep's `population` section; docs/distributional.md). Every member is an
ordinary node's work with its seed in the config; consecutive members share a block node (workloads/population.py):

- the reference: `population_train` blocks of N models retrained without the forget set (role 0 seeds). Their
  configs hold the data, the recipe, the forget set and the seeds, nothing of any original, method or sweep seed, so
  one reference population serves every method, every seed and every later sweep with the same data, forget set and
  recipe, and growing N computes only the new blocks;
- the null: N more retrained models (role 1 seeds) scored against the reference; it is also the `retrain` method's
  row, the best a method can reach at this N;
- per method setting and sweep seed: `population_unlearn` blocks of N runs from that seed's original (role 2 seeds),
  scored against the reference;
- per k of `relearn_k`: a `population_relearn` block on every block of each population (each member attacked with
  its own seed), the relearned populations scored against the relearned reference on the held-out forget examples;
- `population_score` nodes that read the blocks and score the first N members of each side.

This module never imports dag.py (dag.py imports it): it builds through the DagBuilder it is handed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from orchestrator.spec import MethodSetting
from workloads.nodes import (
    Members,
    PopulationRelearnNodeConfig,
    PopulationScoreNodeConfig,
    PopulationTrainNodeConfig,
    PopulationUnlearnNodeConfig,
)
from workloads.population import member_blocks, member_seed
from workloads.relearn_sets import usable_ks

Node = Any  # dag.Node: not imported, dag.py imports this module


@dataclass
class PopulationRow:
    """One method setting on one sweep seed: its population's score against the reference, and after each attack."""

    setting: MethodSetting
    seed: int
    score: Node
    relearned: dict[int, Node]


@dataclass
class Populations:
    members: int
    reference: list[Node]  # the reference population's blocks
    independent: list[Node]  # the null population's blocks
    null: Node  # the null's score: the independent retrained population against the reference
    null_relearned: dict[int, Node]
    rows: list[PopulationRow]


class PopulationBuilder:
    def __init__(self, builder, attack_pool):
        self.b, self.spec, self.p = builder, builder.spec, builder.spec.population
        self.blocks = member_blocks(self.p.members, self.p.block)
        self.ks = usable_ks(self.p.relearn_k, self.spec.relearn.relearn_set, attack_pool)

    def build(self, originals: dict[int, Node], start_of) -> Populations:
        """`originals`: sweep seed -> original; `start_of(setting, seed)`: the node a setting starts from."""
        reference, independent = self._trained("reference"), self._trained("independent")
        attacked = {k: (self._attacked(reference, k), self._attacked(independent, k)) for k in self.ks}
        null_about = {"method": "retrain", "setting": "null", "population": "independent"}
        null = self._score("null", independent, reference, "forget", null_about)
        null_relearned = {
            k: self._score(f"null k={k}", attacked[k][1], attacked[k][0], "heldout_forget", null_about) for k in self.ks
        }
        rows = []
        for seed in self.spec.seeds:
            for setting in self.b.settings:
                if setting.is_oracle:  # the retrained control's population is the null
                    rows.append(PopulationRow(setting, seed, null, null_relearned))
                    continue
                blocks = self._unlearned(setting, seed, originals[seed], start_of(setting, seed))
                about = about_setting(setting, seed)
                name = f"{setting.label} seed={seed}"
                relearned = {
                    k: self._score(f"{name} k={k}", self._attacked(blocks, k), attacked[k][0], "heldout_forget", about)
                    for k in self.ks
                }
                rows.append(
                    PopulationRow(setting, seed, self._score(name, blocks, reference, "forget", about), relearned)
                )
        return Populations(self.p.members, reference, independent, null, null_relearned, rows)

    def _members(self, role: str, block: range) -> Members:
        seeds = [member_seed(self.p.first_seed, role, m) for m in block]
        return Members(seeds=seeds, outputs=self.p.outputs, vectorize=self.p.vectorize)

    @staticmethod
    def _span(block: range) -> str:
        return f"members {block.start}-{block.stop - 1}"

    def _trained(self, role: str) -> list[Node]:
        spec, out = self.spec, []
        for block in self.blocks:
            config = PopulationTrainNodeConfig(
                **self.b.data, train=spec.train, forget=spec.forget, members=self._members(role, block)
            )
            label = f"population retrain {role} {self._span(block)}"
            about = {"method": "retrain", "population": role}
            out.append(self.b.add("population_train", config, label, about=about, **self.b.forget_inputs))
        return out

    def _unlearned(self, setting: MethodSetting, seed: int, original: Node, start: Node) -> list[Node]:
        out = []
        for block in self.blocks:
            config = PopulationUnlearnNodeConfig(
                **self.b.data,
                forget=self.spec.forget,
                method=setting.name,
                hparams=setting.config,
                members=self._members("unlearned", block),
            )
            where = f"seed={seed} {self._span(block)}"
            label, slot = f"population unlearn {setting.label} {where}", f"population unlearn {setting.slot} {where}"
            about = about_setting(setting, seed)
            node = self.b.add(
                "population_unlearn", config, label, slot, about, start=start, original=original, **self.b.forget_inputs
            )
            out.append(node)
        return out

    def _attacked(self, blocks: list[Node], k: int) -> list[Node]:
        """The attack at k on every member of each block, each member with its own model's seed."""
        out = []
        for node in blocks:
            members = replace(node.config.members, outputs=replace(self.p.outputs, keep_models=False))
            config = PopulationRelearnNodeConfig(
                **self.b.attack_data, forget=self.spec.forget, relearn=self.b.relearn, k=k, members=members
            )
            label = node.label.replace("population ", "population relearn ", 1) + f" k={k}"
            out.append(
                self.b.add("population_relearn", config, label, about=node.about, models=node, **self.b.forget_inputs)
            )
        return out

    def _score(self, name: str, candidate: list[Node], reference: list[Node], rows: str, about: dict) -> Node:
        config = PopulationScoreNodeConfig(**self.b.data, score=self.p.score, members=self.p.members, forget_rows=rows)
        inputs = {f"candidate_{i}": n for i, n in enumerate(candidate)} | {
            f"reference_{i}": n for i, n in enumerate(reference)
        }
        return self.b.add("population_score", config, f"population score {name}", about=about, **inputs)


def about_setting(setting: MethodSetting, seed: int) -> dict:
    return {"method": setting.name, "hparams": setting.hparams, "seed": seed, "setting": setting.label}


def sharing_lines(populations: Populations, originals: int) -> list[str]:
    """What `plan` says the populations share."""
    p = populations
    settings = len({(row.setting.label, row.seed) for row in p.rows if row.score is not p.null})
    blocks = len(p.reference)
    return [
        f"1 reference population of {p.members} retrained models ({blocks} nodes) is scored against by "
        f"{settings} unlearning populations and the null; its keys name no original, method or sweep seed, so any "
        "sweep with this data, forget set and recipe reuses it, and a larger N computes only the new blocks",
        f"1 independent retrained population of {p.members} (the null, and the retrain method's row); "
        f"{originals} original(s) each start {settings // max(originals, 1)} populations of {p.members} "
        "unlearning runs",
    ]
