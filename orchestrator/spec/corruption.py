"""The `corruption` section: a corrupted-data task space checked before any job starts, and resolved into the
`corruption` section every node of one corruption carries (its registry name, size, seed and typed args, without the
args added later at their old value, so stored keys stay: workloads.config.added_later)."""

from __future__ import annotations

from orchestrator.spec.errors import SpecError, checked
from orchestrator.spec.schema import CorruptionSpec, SweepSpec
from workloads.config import as_dict, keyed
from workloads.corruptions import CORRUPTIONS, discovered_count


def corruption_sections(corruption: CorruptionSpec, seed: int) -> list[dict]:
    """One node-config `corruption` section per kind, for one sweep seed (the section's `seed`, if set, instead)."""
    return [
        {
            "name": kind.name,
            "size": kind.size if kind.size is not None else corruption.size,
            "seed": seed if corruption.seed is None else corruption.seed,
            "args": keyed(
                CORRUPTIONS.get(kind.name).Config,
                as_dict(checked(CORRUPTIONS.get(kind.name).Config, kind.args, f"corruption.kinds[{i}].args")),
            ),
        }
        for i, kind in enumerate(corruption.kinds)
    ]


def check_corruption(spec: SweepSpec, where: str) -> None:
    """Everything about a task space that can be known wrong without the data (sizes against the data's classes
    are checked when the plan first reads the labels: orchestrator/plan/plan.py)."""
    corruption = spec.corruption
    if corruption is None:
        return
    if not corruption.kinds:
        raise SpecError(f"{where}: corruption.kinds: the task space lists no corruption")
    names = [kind.name for kind in corruption.kinds]
    for i, kind in enumerate(corruption.kinds):
        if kind.name not in CORRUPTIONS:
            raise SpecError(
                f"{where}: corruption.kinds[{i}].name: unknown corruption {kind.name!r}; "
                f"known: {', '.join(CORRUPTIONS.names())}"
            )
        if kind.name in names[:i]:
            raise SpecError(
                f"{where}: corruption.kinds[{i}].name: {kind.name} is listed twice; "
                "a task space has each corruption once"
            )
        checked(CORRUPTIONS.get(kind.name).Config, kind.args, f"{where}: corruption.kinds[{i}].args")
        size = kind.size if kind.size is not None else corruption.size
        if size < 1:
            raise SpecError(f"{where}: corruption.kinds[{i}].size: must be at least 1, got {size}")
    if not corruption.discovery_rates:
        raise SpecError(f"{where}: corruption.discovery_rates: at least one rate is needed")
    for rate in corruption.discovery_rates:
        if not 0 < rate <= 1:
            raise SpecError(f"{where}: corruption.discovery_rates: every rate must be in (0, 1], got {rate}")
        smallest = min(kind.size if kind.size is not None else corruption.size for kind in corruption.kinds)
        if discovered_count(smallest, rate) < 1:
            raise SpecError(
                f"{where}: corruption.discovery_rates: {rate} of {smallest} corrupted examples discovers none"
            )
    if len(set(corruption.discovery_rates)) < len(corruption.discovery_rates):
        raise SpecError(f"{where}: corruption.discovery_rates: a rate is listed twice: {corruption.discovery_rates}")
    stray = [rate for rate in corruption.analysed_rates or [] if rate not in corruption.discovery_rates]
    if stray:
        raise SpecError(
            f"{where}: corruption.analysed_rates: {stray} not among the discovery rates {corruption.discovery_rates}"
        )
    _check_beside(spec, where)


def _check_beside(spec: SweepSpec, where: str) -> None:
    """What a task space replaces: the forget set is the discovered subset (drawn at random, no memorization, no
    canaries), and hyperparameter searches rank against one control, which a task space has per cell."""
    if spec.forget.criterion != "random":
        raise SpecError(
            f"{where}: forget.criterion: a corruption task space forgets the discovered corrupted examples; "
            f"criterion {spec.forget.criterion} does not apply (leave it random)"
        )
    if spec.forget.canary_fraction > 0:
        raise SpecError(f"{where}: forget.canary_fraction: canaries do not combine with a corruption task space")
    if spec.search:
        raise SpecError(
            f"{where}: search: searches rank against one retrained control; a corruption task space has one per cell"
        )
