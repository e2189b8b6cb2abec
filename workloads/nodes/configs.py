"""The typed config of each node kind: what the planner builds (orchestrator/plan/dag.py), what the kind's function
receives, what the plan's cost estimate reads and what the content key hashes.

Every config holds the sections of the sweep it depends on, each typed by the workload that reads it (`TrainConfig`,
`RelearnConfig`, a method's own config...). The dataset, model and corruption are named by their registry entry
with their arguments as the sweep wrote them (`args`); the entry's own dataclass types those when the data or model
is built, so the key never sees a default the sweep did not write.

`as_dict()` is the config as plain data in the shape content keys were first recorded with: a section that does not
apply (no corruption, no canaries, not a shard) is absent, not null. Keys are computed from it alone."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Union

from workloads.config import plain
from workloads.distributional import ScoreConfig
from workloads.evaluation import EvaluationConfig
from workloads.forget import ForgetConfig
from workloads.memorization import MemorizationConfig
from workloads.population import PopulationOutputs
from workloads.relearn import RelearnConfig
from workloads.selection import WorstCaseConfig
from workloads.speed import SpeedConfig
from workloads.train import TrainConfig
from workloads.weightspace import LMCConfig


@dataclass(frozen=True, kw_only=True)
class Section:
    """A config or a part of one. As a node's config its null fields are absent; inside one, null is a value."""

    def as_dict(self) -> dict:
        return {f.name: plain(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, kw_only=True)
class DatasetRef(Section):
    name: str
    args: dict  # as the sweep wrote them; typed by the dataset's registry entry when the data is loaded
    limit_train: Optional[int] = None
    limit_test: Optional[int] = None


@dataclass(frozen=True, kw_only=True)
class ModelRef(Section):
    name: str
    args: dict  # as the sweep wrote them; typed by the model's registry entry when the model is built


@dataclass(frozen=True, kw_only=True)
class CorruptionRef(Section):
    """One corruption of a task space, drawn from its own seed (workloads/corruptions.py)."""

    name: str
    size: int
    seed: int
    args: dict  # typed by the corruption's registry entry


@dataclass(frozen=True, kw_only=True)
class DiscoveredForget(Section):
    """A task-space cell's forget set: the discovered prefix of its corruption's discovery order."""

    discovery_rate: float
    attack_pool_fraction: float


@dataclass(frozen=True, kw_only=True)
class Shard(Section):
    index: int
    count: int


Forget = Union[ForgetConfig, DiscoveredForget]


@dataclass(frozen=True, kw_only=True)
class DataNodeConfig(Section):
    """What every kind names: the data, the model and the speed settings it runs with."""

    dataset: DatasetRef
    model: ModelRef
    speed: SpeedConfig


@dataclass(frozen=True, kw_only=True)
class MemorizationNodeConfig(DataNodeConfig):
    memorization: MemorizationConfig
    shard: Optional[Shard] = None  # one block of the subset models; None: all of them, or the merge of the shards


@dataclass(frozen=True, kw_only=True)
class TrainNodeConfig(DataNodeConfig):
    """`train_original` and `train_retrain`. The original has `forget` only with canaries (their wrong labels are in
    its training set); in a task space both have the corruption they train on."""

    train: TrainConfig
    seed: int
    corruption: Optional[CorruptionRef] = None
    forget: Optional[Forget] = None


@dataclass(frozen=True, kw_only=True)
class ForgetNodeConfig(DataNodeConfig):
    """The kinds that read the forget set (and, in a task space, the corrupted training set)."""

    forget: Forget
    corruption: Optional[CorruptionRef] = None


@dataclass(frozen=True, kw_only=True)
class UnlearnNodeConfig(ForgetNodeConfig):
    method: str
    hparams: Any  # the method's own config dataclass, typed once when the sweep is loaded
    seed: int


@dataclass(frozen=True, kw_only=True)
class EvaluateNodeConfig(ForgetNodeConfig):
    evaluation: EvaluationConfig


@dataclass(frozen=True, kw_only=True)
class RelearnNodeConfig(ForgetNodeConfig):
    relearn: RelearnConfig
    evaluation: EvaluationConfig
    k: int  # forget examples given to the attacker
    seed: int


@dataclass(frozen=True, kw_only=True)
class InterpolateNodeConfig(ForgetNodeConfig):
    lmc: LMCConfig


@dataclass(frozen=True, kw_only=True)
class DistanceNodeConfig(DataNodeConfig):
    pass


@dataclass(frozen=True, kw_only=True)
class Members(Section):
    """The members of a population that one node computes (workloads/population.py): their seeds in member order,
    what each keeps, and whether they may train as one vmapped ensemble."""

    seeds: list[int]
    outputs: PopulationOutputs
    vectorize: bool = True


@dataclass(frozen=True, kw_only=True)
class PopulationTrainNodeConfig(DataNodeConfig):
    """`population_train`: retrained members, each what `train_retrain` with its seed computes."""

    train: TrainConfig
    forget: Forget
    members: Members
    corruption: Optional[CorruptionRef] = None


@dataclass(frozen=True, kw_only=True)
class PopulationUnlearnNodeConfig(ForgetNodeConfig):
    """`population_unlearn`: runs of one method setting from one start, each what `unlearn` with its seed computes."""

    method: str
    hparams: Any
    members: Members


@dataclass(frozen=True, kw_only=True)
class PopulationRelearnNodeConfig(ForgetNodeConfig):
    """`population_relearn`: the relearning attack on every member of a population block (seeds: the attacks')."""

    relearn: RelearnConfig
    k: int
    members: Members


@dataclass(frozen=True, kw_only=True)
class PopulationScoreNodeConfig(DataNodeConfig):
    """`population_score`: every distributional score of the first `members` of a candidate population against as
    many of the reference population, on the forget rows `forget_rows` names (forget | heldout_forget)."""

    score: ScoreConfig
    members: int
    forget_rows: str = "forget"


@dataclass(frozen=True, kw_only=True)
class ForgetBudget(Section):
    """What of the `forget` section a selection depends on: its candidates (a class, or every class), its size and
    the seed of its random start. Not the attack pool or the criterion: those do not change what is selected."""

    target_class: Optional[int]
    fraction: float
    seed: int


@dataclass(frozen=True, kw_only=True)
class SelectForgetNodeConfig(DataNodeConfig):
    """`select_forget`: a worst-case forget set selected from the original (input `original`)."""

    budget: ForgetBudget
    selection: WorstCaseConfig
