"""The sweep file's typed schema. Sections that belong to a workload are that workload's own config dataclass (`train`,
`speed`, `forget`, `memorization`, `relearn`, `lmc`, `evaluation`); sections whose schema depends on a registry entry
(`dataset.args`, `model.args`, a method's `hparams`, a corruption's `args`) are checked against that entry's dataclass
in validate.py. `corruption` turns a sweep into a corrupted-data task space (REM's): see CorruptionSpec."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from orchestrator.spec.tracking import TrackingSpec
from workloads.distributional import ScoreConfig
from workloads.evaluation import EvaluationConfig
from workloads.forget import ForgetConfig
from workloads.memorization import MemorizationConfig
from workloads.population import PopulationOutputs
from workloads.relearn import RelearnConfig
from workloads.speed import SpeedConfig
from workloads.train import TrainConfig
from workloads.weightspace import LMCConfig


@dataclass
class Component:
    name: str = "???"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetSpec(Component):
    limit_train: Optional[int] = None  # keep the first N training examples (smoke runs)
    limit_test: Optional[int] = None


@dataclass
class MethodSpec:
    name: str = "???"
    hparams: dict[str, Any] = field(default_factory=dict)  # merged over configs/methods/<name>.yaml
    grid: dict[str, list[Any]] = field(default_factory=dict)  # hparam -> values; the product is swept
    # The initial safeguard: another method ({name, hparams}) whose unlearned model this one starts from.
    start_from: Optional[dict[str, Any]] = None


@dataclass
class SearchSpec:
    """A hyperparameter search over one unlearning method, run with Ray Tune (orchestrator/execute/search.py)."""

    name: str = "???"  # the method
    space: dict[str, Any] = field(
        default_factory=dict
    )  # hparam -> {loguniform|uniform|randint: [lo, hi]} or {choice: [...]}
    hparams: dict[str, Any] = field(default_factory=dict)  # fixed values under the space
    algorithm: str = "random"  # random | optuna (TPE)
    metric: str = "forget_gap"  # forget_gap | heldout_forget_gap (minimised), tow (maximised)
    test_acc_floor: float = 0.0  # a trial below this test accuracy ranks below every trial above it
    num_samples: int = 8
    max_concurrent: int = 2
    seed: int = 0


@dataclass
class CorruptionKindSpec(Component):
    size: Optional[int] = None  # corrupted training examples; None: the section's `size`


@dataclass
class CorruptionSpec:
    """A corrupted-data task space: every corruption of `kinds` (registered in workloads/corruptions.py) at every
    discovery rate, on every seed, for every method. One original per corruption and seed serves every rate and
    method; the discovered subset at each rate (nested: a prefix of one seeded order) is the forget set."""

    kinds: list[CorruptionKindSpec] = field(default_factory=list)
    size: int = 1000
    discovery_rates: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    seed: Optional[int] = None  # None: each sweep seed draws its own corruption and discovery order
    # Discovery rates whose models (original, retrained baseline, every method) get the relearning attacks, L2 and
    # LMC; None: every rate. The rest are evaluated only (utility and healed), which is what the heatmaps need.
    analysed_rates: Optional[list[float]] = None


@dataclass
class PopulationSpec:
    """Distributional evaluation (docs/distributional.md): N models retrained without the forget set (the reference),
    N more from other seeds (the null, and the `retrain` method's row), N runs of every method setting from each
    seed's original, optionally the relearning attack (the sweep's `relearn` recipe) at each k of `relearn_k` on
    every member; each population scored against the reference by every distributional score."""

    members: int = 32
    first_seed: int = 1000  # member m of role r (0 reference, 1 null, 2 unlearning runs) has seed first_seed + 3m + r
    block: int = 16  # members per node, trained together (vmapped where the model allows) and cached together
    vectorize: bool = True
    outputs: PopulationOutputs = field(default_factory=PopulationOutputs)
    relearn_k: list[int] = field(default_factory=list)  # needs outputs.keep_models
    score: ScoreConfig = field(default_factory=ScoreConfig)


@dataclass
class RelearnSpec(RelearnConfig):
    k: list[int] = field(default_factory=lambda: [0])


@dataclass
class SweepSpec:
    name: str = "???"
    seeds: list[int] = field(default_factory=lambda: [43])
    device: str = "auto"
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: Component = field(default_factory=Component)
    train: TrainConfig = field(default_factory=TrainConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    forget: ForgetConfig = field(default_factory=ForgetConfig)
    corruption: Optional[CorruptionSpec] = None  # a corrupted-data task space (REM's) instead of one forget set
    population: Optional[PopulationSpec] = (
        None  # distributional evaluation: ensembles of retrained and unlearned models
    )
    memorization: MemorizationConfig = field(default_factory=MemorizationConfig)
    # forget.criterion: worst_case: the selection's settings over configs/selection/worst_case.yaml (spec/selection.py)
    worst_case: dict[str, Any] = field(default_factory=dict)
    methods: list[MethodSpec] = field(default_factory=list)
    search: list[SearchSpec] = field(default_factory=list)  # each best setting found joins the methods
    # Applied over every method's hparams, for the keys a method has (e.g. epochs, batch_size in a smoke profile).
    method_overrides: dict[str, Any] = field(default_factory=dict)
    relearn: RelearnSpec = field(default_factory=RelearnSpec)
    lmc: LMCConfig = field(default_factory=LMCConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)  # clean or augmented training-set splits
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    # num_cpus / num_gpus per node kind, per method or `default` (spec/resources.py); the Ray executor's business.
    resources: dict[str, Any] = field(default_factory=dict)
    # Named sets of overrides, applied by naming them on the command line (`unlearn-sweep run study.yaml smoke`).
    profiles: dict[str, Any] = field(default_factory=dict)
