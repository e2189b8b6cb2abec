"""Sweep spec -> DAG of nodes. A node is a kind, its typed config (workloads/nodes/configs.py) and named inputs; its
content key is computed once its inputs' keys and (if it reads the forget set) the forget-set indices are known
(plan/keys.py), and never changes after that.

Per seed the DAG holds the original and the retrained control; per method setting and seed an unlearned model
(chained on another one for an initial safeguard). Every model is measured the same way (`ModelNodes`): evaluated,
attacked by relearning for each k, and, for all but the original, compared with the original in weight space.

A corrupted-data task space (`corruption:`) is the same DAG per cell: each corruption x discovery rate is a `Task`
whose nodes carry the corruption (every node that reads the training set) and the cell's forget section (the
discovered subset). The original's config holds the corruption but no discovery rate, so the builder's dedup makes
it one node per corruption and seed, shared by every rate and method; the retrained baseline is per cell.

The forget set is chosen by the node its readers take as `forget_scores`: none (`random`), the sweep's one
memorization estimate (`high_mem`, `low_mem`), or, for `worst_case`, a `select_forget` node per original, upstream of
that seed's retrained control and every node that reads its forget set (workloads/selection.py).

A `population:` section adds distributional evaluation: populations of retrained and unlearned models in block nodes
and their scores (plan/population.py builds them through this builder).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Optional

from orchestrator.plan.identity import canonical_json
from orchestrator.plan.population import PopulationBuilder, Populations
from orchestrator.spec import MethodSetting, SweepSpec, as_dict, expand_method
from orchestrator.spec.corruption import corruption_sections
from orchestrator.spec.selection import worst_case_config
from workloads.corruptions import discovered_count
from workloads.data import DATASETS, attack_only_fields
from workloads.forget import MEMORIZATION_CRITERIA
from workloads.nodes import (
    NODE_KINDS,
    CorruptionRef,
    DataNodeConfig,
    DatasetRef,
    DiscoveredForget,
    DistanceNodeConfig,
    EvaluateNodeConfig,
    InterpolateNodeConfig,
    MemorizationNodeConfig,
    ModelRef,
    RelearnNodeConfig,
    Shard,
    TrainNodeConfig,
    UnlearnNodeConfig,
)
from workloads.nodes.configs import Forget, ForgetBudget, SelectForgetNodeConfig
from workloads.relearn import RelearnConfig
from workloads.relearn_sets import usable_ks, uses_corrupted_test


@dataclass(eq=False)
class Node:
    kind: str
    config: DataNodeConfig  # of the kind's config class
    inputs: dict[str, Node] = field(default_factory=dict)
    label: str = ""
    slot: str = ""  # the label without hyperparameters: earlier runs in the same slot explain why this one is new
    key: Optional[str] = None  # set once, when it becomes known
    # The model this node makes or measures (method, hparams, seed, start): recorded on its run so runs compare by
    # method in the MLflow UI. Never part of the key: the config and inputs already determine the result.
    about: dict = field(default_factory=dict)

    def __post_init__(self):
        NODE_KINDS.get(self.kind).check(self.config, self.inputs)
        self.slot = self.slot or self.label

    def __setattr__(self, name: str, value) -> None:
        if name == "key" and getattr(self, "key", None) not in (None, value):
            raise AttributeError(f"{self.label}: a node's content key, once known, never changes")
        super().__setattr__(name, value)

    @property
    def reads_forget_set(self) -> bool:
        return NODE_KINDS.get(self.kind).reads_forget_set(self.config)

    @property
    def method(self) -> Optional[str]:
        """The unlearning method an unlearn node runs (None for the other kinds)."""
        return getattr(self.config, "method", None)

    @property
    def input_keys(self) -> dict[str, str]:
        return {role: inp.key for role, inp in self.inputs.items()}

    @property
    def short(self) -> str:
        return (self.key or "?" * 12)[:12]


@dataclass
class ModelNodes:
    """A model and the nodes that measure it."""

    model: Node
    evaluate: Node
    relearn: dict[int, Node]  # k -> the attack with k forget examples given away
    distance: Optional[Node] = None  # L2 to the original (None for the original itself)
    interpolate: Optional[Node] = None  # LMC from the original


@dataclass(frozen=True)
class Cell:
    """A place in a corrupted-data task space."""

    corruption: str  # the corruption's registry name
    discovery_rate: float

    def as_dict(self) -> dict:
        return {"corruption": self.corruption, "discovery_rate": self.discovery_rate}


@dataclass(frozen=True, eq=False)
class Task:
    """What the models of a seed train on and forget: the `forget` section of the nodes that read the forget set,
    and in a task space the `corruption` section of every node that reads the training set, its cell and the size
    of its attack pool (which caps the relearning k grid)."""

    forget: Forget
    corruption: Optional[CorruptionRef] = None
    cell: Optional[Cell] = None
    attack_pool: Optional[int] = None
    analysed: bool = True  # relearning attacks, L2 and LMC attach to its models
    scores: Optional[Node] = None  # the node whose scores choose the forget set (memorization, worst-case selection)

    @property
    def forget_inputs(self) -> dict[str, Optional[Node]]:
        """The input every node that reads the forget set takes: the node that chose it (none for `random`)."""
        return {"forget_scores": self.scores}

    @property
    def where(self) -> str:
        """The label's suffix: nothing, or the corruption and the discovery rate."""
        return "" if self.cell is None else f" {self.cell.corruption} rate={self.cell.discovery_rate:g}"


@dataclass
class SeedControls:
    seed: int
    original: ModelNodes
    retrain: ModelNodes  # the gold standard, and the relearning control
    # In a task space, the controls are the cell's (the original measured on its forget set).
    cell: Optional[Cell] = None
    # The node whose scores chose this seed's forget set: the memorization estimate, the seed's worst-case selection
    # (`select_forget`), or None.
    forget_scores: Optional[Node] = None


@dataclass
class ResultRow:
    """One method setting on one seed (and cell). The oracle's row is the seed's retrained control."""

    setting: MethodSetting
    seed: int
    nodes: ModelNodes
    cell: Optional[Cell] = None


@dataclass
class SweepDAG:
    nodes: list[Node]  # in topological order
    memorization: Optional[Node]
    controls: dict  # seed -> SeedControls; in a task space (seed, Cell) -> SeedControls
    results: list[ResultRow]
    populations: Optional[Populations] = None  # distributional evaluation (`population:`; plan/population.py)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)


class DagBuilder:
    """Builds the DAG of one spec from its method settings; `attack_pool` (forget examples an attacker may use) caps
    the k grid."""

    def __init__(self, spec: SweepSpec, settings: list[MethodSetting], attack_pool: Optional[int] = None):
        self.spec, self.settings, self.attack_pool = spec, settings, attack_pool
        self.nodes: list[Node] = []
        self._seen: dict[str, Node] = {}
        dataset = as_dict(spec.dataset)
        attack_only = attack_only_fields(DATASETS.get(spec.dataset.name).config)
        trained_on = {**dataset, "args": {k: v for k, v in dataset["args"].items() if k not in attack_only}}
        model = ModelRef(name=spec.model.name, args=dict(spec.model.args))
        self.data = {"dataset": DatasetRef(**trained_on), "model": model, "speed": spec.speed}
        # Only attacks that train on the corrupted test copy see the fields that describe it.
        corrupted_test = uses_corrupted_test(spec.relearn.relearn_set)
        self.attack_data = {**self.data, "dataset": DatasetRef(**dataset)} if corrupted_test else self.data
        self.relearn = RelearnConfig(**{k: v for k, v in as_dict(spec.relearn).items() if k != "k"})
        # The k grid stops at the attack pool: k forget examples must exist to be given to the attacker.
        self.ks = usable_ks(spec.relearn.k, spec.relearn.relearn_set, attack_pool)
        criterion = spec.forget.criterion
        self.memorization = self._memorization() if criterion in MEMORIZATION_CRITERIA else None
        # worst_case: the selection's settings; its node is per original (`_selected`).
        self.worst_case = worst_case_config(spec.worst_case) if criterion == "worst_case" else None

    def add(
        self,
        kind: str,
        config: DataNodeConfig,
        label: str,
        slot: str = "",
        about: Optional[dict] = None,
        **inputs: Optional[Node],
    ) -> Node:
        inputs = {role: n for role, n in inputs.items() if n is not None}
        # The same job asked for twice (a chain's start that is also swept on its own) is one node.
        identity = canonical_json([kind, config.as_dict(), {role: id(n) for role, n in inputs.items()}])
        if identity not in self._seen:
            self._seen[identity] = Node(kind, config, inputs, label, slot, about=dict(about or {}))
            self.nodes.append(self._seen[identity])
        return self._seen[identity]

    def build(self) -> SweepDAG:
        controls, results = {}, []
        for seed in self.spec.seeds:
            for task in self._tasks(seed):
                original = self._original(seed, task)
                task = self._selected(task, original, seed)  # every node that reads the forget set depends on it
                seed_controls = self._controls(seed, task, original)
                controls[seed if task.cell is None else (seed, task.cell)] = seed_controls
                results.extend(self._result(setting, seed_controls, task) for setting in self.settings)
        populations = self._populations(controls) if self.spec.population is not None else None
        return SweepDAG(self.nodes, self.memorization, controls, results, populations)

    @property
    def forget_inputs(self) -> dict[str, Optional[Node]]:
        """A population's nodes read the sweep's one forget set (spec/population.py: no task space, no worst case),
        chosen by the memorization node or by nothing."""
        return {"forget_scores": self.memorization}

    def _populations(self, controls: dict) -> Populations:
        """Distributional evaluation (plan/population.py). One forget set (no task space): controls keyed by seed."""

        def start_of(setting: MethodSetting, seed: int) -> Node:
            original = controls[seed].original.model
            return (
                original
                if setting.start is None
                else self._unlearned(setting.start, seed, original, Task(self.spec.forget, scores=self.memorization))
            )

        originals = {seed: c.original.model for seed, c in controls.items()}
        return PopulationBuilder(self, self.attack_pool).build(originals, start_of)

    def _tasks(self, seed: int) -> list[Task]:
        """The sweep's one forget set, or every corruption x discovery rate of its task space."""
        corruption = self.spec.corruption
        if corruption is None:
            return [Task(self.spec.forget, scores=self.memorization)]
        pool_fraction = self.spec.forget.attack_pool_fraction
        analysed = corruption.discovery_rates if corruption.analysed_rates is None else corruption.analysed_rates
        return [
            Task(
                DiscoveredForget(discovery_rate=rate, attack_pool_fraction=pool_fraction),
                section,
                Cell(section.name, rate),
                int(pool_fraction * discovered_count(section.size, rate)),
                rate in analysed,
            )
            for section in (CorruptionRef(**s) for s in corruption_sections(corruption, seed))
            for rate in corruption.discovery_rates
        ]

    def _memorization(self) -> Node:
        """The scores node; sharded, n nodes each train a contiguous block of the models and this one merges them."""
        memorization = self.spec.memorization
        shards = memorization.shards if memorization.scores_file is None else 1  # a file is read, never sharded
        parts = {
            f"shard_{i}": self.add(
                "memorization",
                MemorizationNodeConfig(**self.data, memorization=memorization, shard=Shard(index=i, count=shards)),
                f"memorization shard {i}/{shards}",
            )
            for i in range(shards if shards > 1 else 0)
        }
        config = MemorizationNodeConfig(**self.data, memorization=memorization)
        return self.add("memorization", config, "memorization", **parts)

    def _original(self, seed: int, task: Task) -> Node:
        train = {**self.data, "corruption": task.corruption, "train": self.spec.train, "seed": seed}
        # Canaries are relabelled in the training set itself, so with them even the original reads the forget set.
        canaries = self.spec.forget.canary_fraction > 0
        # In a task space one original serves every rate: its label and record name the corruption only.
        shared = f"seed={seed}" + ("" if task.cell is None else f" {task.cell.corruption}")
        cell = {} if task.cell is None else task.cell.as_dict()
        original_about = {"method": "original", "seed": seed, "setting": "original"}
        return self.add(
            "train_original",
            TrainNodeConfig(**train, forget=task.forget if canaries else None),
            f"original {shared}",
            about=original_about | {k: v for k, v in cell.items() if k == "corruption"},
            **(task.forget_inputs if canaries else {}),
        )

    def _selected(self, task: Task, original: Node, seed: int) -> Task:
        """The task with its worst-case selection from `original` (the task itself for the other criteria). The
        selection's key is the original's, the budget (candidates, size, seed) and the selection's settings: one
        selection serves every method of every sweep that shares them."""
        if self.worst_case is None:
            return task
        forget = self.spec.forget
        budget = ForgetBudget(target_class=forget.target_class, fraction=forget.fraction, seed=forget.seed)
        config = SelectForgetNodeConfig(**self.data, budget=budget, selection=self.worst_case)
        about = {"method": "worst_case selection", "seed": seed, "setting": "worst_case selection"}
        selection = self.add("select_forget", config, f"select_forget seed={seed}", about=about, original=original)
        return dataclasses.replace(task, scores=selection)

    def _controls(self, seed: int, task: Task, original: Node) -> SeedControls:
        label = f"seed={seed}{task.where}"
        train = {**self.data, "corruption": task.corruption, "train": self.spec.train, "seed": seed}
        cell = {} if task.cell is None else task.cell.as_dict()
        retrain = self.add(
            "train_retrain",
            TrainNodeConfig(**train, forget=task.forget),
            f"retrain {label}",
            about={"method": "retrain", "seed": seed, "setting": "retrain (control)", **cell},
            **task.forget_inputs,
        )
        return SeedControls(
            seed,
            self._measured(original, f"original {label}", seed, task),
            self._measured(retrain, f"retrain {label}", seed, task, original=original),
            task.cell,
            task.scores,
        )

    def _result(self, setting: MethodSetting, controls: SeedControls, task: Task) -> ResultRow:
        if setting.is_oracle:  # `retrain` is the control every sweep already has
            return ResultRow(setting, controls.seed, controls.retrain, task.cell)
        seed, original = controls.seed, controls.original.model
        unlearned = self._unlearned(setting, seed, original, task)
        label, slot = f"{setting.label} seed={seed}{task.where}", f"{setting.slot} seed={seed}{task.where}"
        return ResultRow(setting, seed, self._measured(unlearned, label, seed, task, slot, original), task.cell)

    def _unlearned(self, setting: MethodSetting, seed: int, original: Node, task: Task) -> Node:
        start = original if setting.start is None else self._unlearned(setting.start, seed, original, task)
        config = UnlearnNodeConfig(
            **self.data,
            corruption=task.corruption,
            forget=task.forget,
            method=setting.name,
            hparams=setting.config,
            seed=seed,
        )
        about = about_setting(setting, seed) | (task.cell.as_dict() if task.cell else {})
        return self.add(
            "unlearn",
            config,
            f"unlearn {setting.label} seed={seed}{task.where}",
            f"unlearn {setting.slot} seed={seed}{task.where}",
            about=about,
            start=start,
            original=original,
            **task.forget_inputs,
        )

    def _measured(
        self, model: Node, label: str, seed: int, task: Task, slot: str = "", original: Optional[Node] = None
    ) -> ModelNodes:
        """Evaluation and relearning attacks of `model`; L2 and LMC to `original` when given."""
        named = Named(label, slot or label, model.about)
        measured = {"corruption": task.corruption, "forget": task.forget}
        config = EvaluateNodeConfig(**self.data, **measured, evaluation=self.spec.evaluation)
        evaluate = self.add("evaluate", config, *named("evaluate"), model=model, **task.forget_inputs)
        if not task.analysed:
            return ModelNodes(model, evaluate, {})
        relearn = self._attacks(model, named, seed, task)
        if original is None:
            return ModelNodes(model, evaluate, relearn)
        distance = self.add("distance", DistanceNodeConfig(**self.data), *named("distance"), a=original, b=model)
        config = InterpolateNodeConfig(**self.data, **measured, lmc=self.spec.lmc)
        lmc = self.add("interpolate", config, *named("lmc"), a=original, b=model, **task.forget_inputs)
        return ModelNodes(model, evaluate, relearn, distance, lmc)

    def _attacks(self, model: Node, named: Named, seed: int, task: Task) -> dict[int, Node]:
        """The relearning attack on `model` for each k the attack pool allows."""
        spec = self.spec
        ks = self.ks if task.cell is None else usable_ks(spec.relearn.k, spec.relearn.relearn_set, task.attack_pool)
        section = {"corruption": task.corruption, "forget": task.forget, "relearn": self.relearn}
        attacks = {}
        for k in ks:
            config = RelearnNodeConfig(**self.attack_data, **section, evaluation=spec.evaluation, seed=seed, k=k)
            attacks[k] = self.add("relearn", config, *named("relearn", f" k={k}"), model=model, **task.forget_inputs)
        return attacks


@dataclass(frozen=True)
class Named:
    """How the nodes measuring one model are named: `evaluate <label>`, `relearn <label> k=5`, ..., in their slot."""

    label: str
    slot: str
    about: dict

    def __call__(self, word: str, suffix: str = "") -> tuple[str, str, dict]:
        """(label, slot, about) of the node `word` names."""
        return f"{word} {self.label}{suffix}", f"{word} {self.slot}{suffix}", self.about


def about_setting(setting: MethodSetting, seed: int) -> dict:
    """What an unlearned model is, for its runs: the method, its hparams, the seed and the model it started from."""
    return {
        "method": setting.name,
        "hparams": setting.hparams,
        "seed": seed,
        "setting": setting.label,
        "start_from": "original" if setting.start is None else setting.start.label,
    }


def method_settings(spec: SweepSpec) -> list[MethodSetting]:
    """Every method's grid expanded and typed (`load_sweep` already did this for a sweep file)."""
    return [s for i, m in enumerate(spec.methods) for s in expand_method(m, f"methods[{i}]", spec.method_overrides)]


def build_dag(
    spec: SweepSpec, attack_pool: Optional[int] = None, settings: Optional[list[MethodSetting]] = None
) -> SweepDAG:
    return DagBuilder(spec, method_settings(spec) if settings is None else list(settings), attack_pool).build()
