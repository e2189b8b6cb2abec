"""Sweep spec -> DAG of nodes. A node is a kind, a fully resolved config and named inputs; its content key is
computed once its inputs' keys and (if it reads the forget set) the forget-set indices are known."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

from orchestrator.spec import SweepSpec, as_dict, changed_hparams, expand_method

KINDS = ("memorization", "train_original", "train_retrain", "unlearn", "relearn", "interpolate", "distance", "evaluate")


@dataclass(eq=False)
class Node:
    kind: str
    config: dict
    inputs: dict[str, "Node"] = field(default_factory=dict)
    label: str = ""
    reads_forget_set: bool = False  # its key includes the forget/retain index hashes
    slot: str = ""  # the label without hyperparameters: earlier runs in the same slot explain why this one is new
    key: Optional[str] = None

    def __post_init__(self):
        assert self.kind in KINDS, self.kind

    @property
    def short(self) -> str:
        return (self.key or "?" * 12)[:12]


@dataclass
class SweepDAG:
    nodes: list[Node]  # in topological order
    memorization: Optional[Node]
    # Named handles the summary reads, per seed.
    original: dict[int, Node]
    original_eval: dict[int, Node]
    retrain: dict[int, Node]
    retrain_eval: dict[int, Node]
    retrain_relearn: dict[int, dict[int, Node]]
    retrain_distance: dict[int, Node]
    retrain_lmc: dict[int, Node]
    results: list[dict]  # one per (method setting, seed): name, hparams, seed and its nodes

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)


def build_dag(spec: SweepSpec) -> SweepDAG:
    nodes: list[Node] = []

    def add(kind: str, config: dict, label: str, reads_forget_set: bool = False, slot: str = "", **inputs: Optional[Node]) -> Node:
        node = Node(kind, config, {role: n for role, n in inputs.items() if n is not None}, label, reads_forget_set, slot or label)
        nodes.append(node)
        return node

    data = {"dataset": as_dict(spec.dataset), "model": as_dict(spec.model)}
    forget = as_dict(spec.forget)
    memorization = None
    if spec.forget.criterion != "random":
        memorization = add("memorization", {"dataset": data["dataset"], "model": data["model"],
                                             "memorization": as_dict(spec.memorization)}, "memorization")
    # Every node that reads the forget set depends on the memorization node that chose it.
    forget_inputs = {"forget_scores": memorization}
    relearn_config = {k: v for k, v in as_dict(spec.relearn).items() if k != "k"}

    def evaluate(model: Node, label: str, slot: str = "") -> Node:
        return add("evaluate", {**data, "forget": forget}, f"evaluate {label}", True, f"evaluate {slot or label}",
                   model=model, **forget_inputs)

    def attacks(model: Node, label: str, seed: int, slot: str = "") -> dict[int, Node]:
        return {k: add("relearn", {**data, "forget": forget, "relearn": relearn_config, "k": k, "seed": seed},
                       f"relearn {label} k={k}", True, f"relearn {slot or label} k={k}", model=model, **forget_inputs)
                for k in spec.relearn.k}

    def weight_space(model: Node, original: Node, label: str, slot: str = "") -> tuple[Node, Node]:
        distance = add("distance", dict(data), f"distance {label}", False, f"distance {slot or label}", a=original, b=model)
        lmc = add("interpolate", {**data, "forget": forget, "lmc": as_dict(spec.lmc)}, f"lmc {label}", True,
                  f"lmc {slot or label}", a=original, b=model, **forget_inputs)
        return distance, lmc

    dag = SweepDAG(nodes, memorization, {}, {}, {}, {}, {}, {}, {}, [])
    train = as_dict(spec.train)
    settings = [s for i, m in enumerate(spec.methods) for s in expand_method(m, f"methods[{i}]")]
    for seed in spec.seeds:
        original = add("train_original", {**data, "train": train, "seed": seed}, f"original seed={seed}")
        retrain = add("train_retrain", {**data, "train": train, "seed": seed, "forget": forget},
                      f"retrain seed={seed}", True, **forget_inputs)
        dag.original[seed], dag.retrain[seed] = original, retrain
        dag.original_eval[seed] = evaluate(original, f"original seed={seed}")
        dag.retrain_eval[seed] = evaluate(retrain, f"retrain seed={seed}")
        dag.retrain_relearn[seed] = attacks(retrain, f"retrain seed={seed}", seed)
        dag.retrain_distance[seed], dag.retrain_lmc[seed] = weight_space(retrain, original, f"retrain seed={seed}")
        for name, hparams in settings:
            label = f"{name} {changed_hparams(name, hparams)} seed={seed}".replace("  ", " ")
            slot = f"{name} seed={seed}"
            unlearned = add("unlearn", {**data, "forget": forget, "method": name, "hparams": hparams, "seed": seed},
                            f"unlearn {label}", True, f"unlearn {slot}", start=original, original=original, **forget_inputs)
            distance, lmc = weight_space(unlearned, original, label, slot)
            dag.results.append({"method": name, "hparams": hparams, "seed": seed, "unlearn": unlearned,
                                "evaluate": evaluate(unlearned, label, slot), "relearn": attacks(unlearned, label, seed, slot),
                                "distance": distance, "interpolate": lmc})
    return dag
