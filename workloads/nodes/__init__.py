"""Node kinds by registry name. Importing this package registers every kind module in it: `memorization`,
`train_original`, `train_retrain`, `unlearn`, `relearn`, `evaluate`, `distance` and `interpolate`, and the
population kinds of distributional evaluation (`population_train`, `population_unlearn`, `population_relearn`,
`population_score`; what they share is in `population_common`)."""

import importlib
import pkgutil

from workloads.nodes.base import NODE_KINDS, DataSize, InputNode, NodeKind, NodeOutput, RunContext, Work, register_kind
from workloads.nodes.common import dataset_for, load_data
from workloads.nodes.configs import (
    CorruptionRef,
    DataNodeConfig,
    DatasetRef,
    DiscoveredForget,
    DistanceNodeConfig,
    EvaluateNodeConfig,
    InterpolateNodeConfig,
    Members,
    MemorizationNodeConfig,
    ModelRef,
    PopulationRelearnNodeConfig,
    PopulationScoreNodeConfig,
    PopulationTrainNodeConfig,
    PopulationUnlearnNodeConfig,
    RelearnNodeConfig,
    Shard,
    TrainNodeConfig,
    UnlearnNodeConfig,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "common", "configs", "population_common"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "NODE_KINDS",
    "CorruptionRef",
    "DataNodeConfig",
    "DataSize",
    "DatasetRef",
    "DiscoveredForget",
    "DistanceNodeConfig",
    "EvaluateNodeConfig",
    "InputNode",
    "InterpolateNodeConfig",
    "MemorizationNodeConfig",
    "Members",
    "ModelRef",
    "NodeKind",
    "NodeOutput",
    "PopulationRelearnNodeConfig",
    "PopulationScoreNodeConfig",
    "PopulationTrainNodeConfig",
    "PopulationUnlearnNodeConfig",
    "RelearnNodeConfig",
    "RunContext",
    "Shard",
    "TrainNodeConfig",
    "UnlearnNodeConfig",
    "Work",
    "dataset_for",
    "load_data",
    "register_kind",
]
