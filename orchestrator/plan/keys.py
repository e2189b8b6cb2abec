"""Content keys as they become known. A node's key needs its inputs' keys and, if it reads the forget set, the
forget set it reads: the sweep's (chosen by the scores of the node it takes as `forget_scores` when its criterion
needs them, so known only once that node is done: the memorization estimate, or for `worst_case` its seed's
selection) or, in a task space, its cell's view of the corrupted training set. Each forget set is drawn once per plan
and scoring node and kept; a key, once set on its node, never changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch

from orchestrator.plan.dag import Node
from orchestrator.plan.identity import canonical_json, node_identity
from orchestrator.plan.plan import Plan
from workloads.corruptions import forget_set_for
from workloads.forget import ForgetSet, select_forget_set

# The scores of a scoring node (memorization, select_forget), or None while they are not known.
Scores = Callable[[Node], Optional[torch.Tensor]]


class ForgetSets:
    def __init__(self, plan: Plan):
        self.plan = plan
        self._sweep: dict[Optional[Node], ForgetSet] = {}  # by the node whose scores chose it (None: random)
        self._views: dict[str, ForgetSet] = {}  # a task space's forget sets, by corruption and discovery rate

    def of(self, node: Node, scores: Scores) -> Optional[ForgetSet]:
        """The forget set `node` reads, or None while it cannot be known (scores not computed, data missing)."""
        if self.plan.data_error is not None:
            return None
        config = node.config
        if config.corruption is None:
            return self._of_sweep(node.inputs.get("forget_scores"), scores)
        which = canonical_json([config.as_dict().get(section) for section in ("corruption", "forget")])
        if which not in self._views:
            labels = self.plan.labels
            self._views[which] = forget_set_for(config.as_dict(), labels.y_train, labels.num_classes)
        return self._views[which]

    def _of_sweep(self, source: Optional[Node], scores: Scores) -> Optional[ForgetSet]:
        if source not in self._sweep:
            found = None if source is None else scores(source)
            if source is not None and found is None:
                return None
            labels, spec = self.plan.labels, self.plan.spec
            self._sweep[source] = select_forget_set(labels.y_train, spec.forget, found, labels.num_classes)
        return self._sweep[source]


def resolve_key(node: Node, forget_sets: ForgetSets, scores: Scores) -> Optional[str]:
    """Sets the node's key once its inputs' keys and its forget set are known; returns it (None: not yet)."""
    if node.key is None and all(inp.key for inp in node.inputs.values()):
        forget_set = forget_sets.of(node, scores) if node.reads_forget_set else None
        if node.reads_forget_set and forget_set is None:
            return None
        node.key = node_identity(node.kind, node.config, node.input_keys, forget_set).key
    return node.key
