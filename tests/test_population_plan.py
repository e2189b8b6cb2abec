"""Populations in the plan: the reference population's blocks are keyed by the data, the forget set, the recipe and
their seeds alone (shared by every method, seed and later sweep), a larger N adds blocks and keeps the old ones'
keys, the `retrain` method's population is the null, chained settings start from their start's model, relearning
attacks attach to every block; and the sweep file's population section is checked before anything runs."""

import pytest

from orchestrator.plan import build_dag, node_identity
from orchestrator.plan.sharing import sharing
from orchestrator.spec import SpecError, as_dict, load_spec
from tests.conftest import REPO
from workloads.forget import attack_pool_size, select_forget_set
from workloads.nodes import dataset_for

SWEEP = REPO / "configs" / "sweeps" / "distributional_cpu.yaml"


@pytest.fixture(scope="module")
def labels():
    spec = load_spec(SWEEP)
    return dataset_for({"dataset": as_dict(spec.dataset)}).y_train


def planned(labels, overrides=()):
    spec = load_spec(SWEEP, list(overrides))
    dag = build_dag(spec, attack_pool_size(labels, spec.forget))
    forget_set = select_forget_set(labels, spec.forget)
    for node in dag:
        node.key = node_identity(
            node.kind, node.config, node.input_keys, forget_set if node.reads_forget_set else None
        ).key
    return dag


def keys(dag, kind):
    return {node.label: node.key for node in dag if node.kind == kind}


def test_the_populations_of_the_cpu_sweep(labels):
    dag = planned(labels)
    p = dag.populations
    kinds = [node.kind for node in dag]
    assert kinds.count("population_train") == 4  # reference and null, two blocks of 16 each
    assert kinds.count("population_unlearn") == 2 * 4  # four unlearning settings
    assert kinds.count("population_relearn") == 2 * 6 and kinds.count("population_score") == 2 * 5
    assert [len(b.config.members.seeds) for b in p.reference] == [16, 16]
    assert p.reference[0].config.members.seeds[:2] == [1000, 1003] and p.independent[0].config.members.seeds[0] == 1001
    retrain_rows = [row for row in p.rows if row.setting.is_oracle]
    assert retrain_rows and retrain_rows[0].score is p.null and retrain_rows[0].relearned[0] is p.null_relearned[0]
    scores = [row.score for row in p.rows if not row.setting.is_oracle]
    assert all(set(s.inputs) == {"candidate_0", "candidate_1", "reference_0", "reference_1"} for s in scores)
    assert all(s.inputs["reference_0"] is p.reference[0] for s in scores)  # one reference for every method
    relearned = [row.relearned[0] for row in p.rows]
    assert all(r.config.forget_rows == "heldout_forget" for r in relearned) and p.null.config.forget_rows == "forget"
    assert any("reference population of 32 retrained models" in line for line in sharing(dag))


def test_the_reference_is_shared_across_methods_seeds_and_a_growing_n(labels):
    base = keys(planned(labels), "population_train")
    other = keys(
        planned(labels, ["seeds=[44]", "methods=[{name: finetune}]", "population.relearn_k=[]"]), "population_train"
    )
    assert base == other  # no original, method or sweep seed in their keys
    grown = keys(planned(labels, ["population.members=64"]), "population_train")
    assert len(grown) == 8 and all(grown[label] == key for label, key in base.items())  # the 32 first: the same nodes
    unlearned = keys(planned(labels), "population_unlearn")
    assert all(
        keys(planned(labels, ["population.members=64"]), "population_unlearn")[k] == v for k, v in unlearned.items()
    )
    moved = keys(planned(labels, ["train.epochs=31"]), "population_train")
    assert not set(moved.values()) & set(base.values())  # another recipe: another population


def test_a_chained_setting_starts_its_runs_from_its_start_model(labels):
    dag = planned(
        labels, ["methods=[{name: weight_dist_reg, start_from: {name: weight_distortion}}]", "population.relearn_k=[]"]
    )
    blocks = [node for node in dag if node.kind == "population_unlearn"]
    assert blocks and all(
        b.inputs["start"].kind == "unlearn" and b.inputs["start"].method == "weight_distortion" for b in blocks
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["population.members=2"], "population.members: at least 3"),
        (["population.outputs.keep_models=false"], "relearn_k: attacking the members needs their weights"),
        (["population.first_seed=40"], "first_seed: the members' seeds 40..135 include the sweep's seed"),
        (["population.score.klom.margin=largest"], "population.score.klom.margin: must be one of logsumexp, max_other"),
    ],
)
def test_the_population_section_is_checked_before_anything_runs(overrides, message):
    with pytest.raises(SpecError, match=message):
        load_spec(SWEEP, overrides)
