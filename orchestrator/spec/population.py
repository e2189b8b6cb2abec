"""The `population` section (distributional evaluation, docs/distributional.md) checked before any job starts."""

from __future__ import annotations

from orchestrator.spec.errors import SpecError
from orchestrator.spec.schema import SweepSpec
from workloads.distributional import check_score_config
from workloads.population import member_seed


def check_population(spec: SweepSpec, where: str) -> None:
    population = spec.population
    if population is None:
        return
    key = f"{where}: population"
    if population.members < 3:
        raise SpecError(
            f"{key}.members: at least 3 (the score has no bucket below ceil(ln(N - 1)) = 1), got {population.members}"
        )
    if population.block < 1 or population.outputs.sample < 1:
        raise SpecError(f"{key}.block and population.outputs.sample: must be at least 1")
    if spec.corruption is not None:
        raise SpecError(f"{key}: a corrupted-data task space has no populations yet; use one forget set")
    if spec.forget.criterion == "worst_case":
        raise SpecError(f"{key}: populations of a worst-case forget set (one selection per seed) are not built yet")
    if population.relearn_k and not population.outputs.keep_models:
        raise SpecError(
            f"{key}.relearn_k: attacking the members needs their weights: set population.outputs.keep_models: true"
        )
    if any(k < 0 for k in population.relearn_k):
        raise SpecError(f"{key}.relearn_k: values must be >= 0, got {population.relearn_k}")
    first, last = population.first_seed, member_seed(population.first_seed, "unlearned", population.members - 1)
    clash = sorted(s for s in spec.seeds if first <= s <= last)
    if clash:
        raise SpecError(
            f"{key}.first_seed: the members' seeds {first}..{last} include the sweep's seed(s) {clash}: a retrained "
            "member would start from its original's initial weights; move first_seed"
        )
    try:
        check_score_config(population.score)
    except ValueError as error:
        raise SpecError(f"{key}.score.{error}") from None
