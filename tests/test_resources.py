"""What each node asks of a Ray worker: the most specific of the sweep's method entry, the method's defaults file,
the sweep's node kind, its default, and the built-in shares; none of it enters a content key."""

import pytest

from orchestrator.execute.resources import resources_for
from orchestrator.spec import SpecError, load_spec, method_defaults
from tests.conftest import tiny_quickstart


def test_the_most_specific_setting_wins():
    section = {"default": {"num_cpus": 2}, "unlearn": {"num_gpus": 0.25}, "neggrad_plus": {"num_gpus": 0.125}}
    assert resources_for(section, "unlearn", "neggrad_plus", True) == {"num_cpus": 2.0, "num_gpus": 0.125}
    assert resources_for(section, "unlearn", "tar", True) == {
        "num_cpus": 2.0,
        "num_gpus": 0.5,
    }  # configs/methods/tar.yaml
    assert resources_for(section, "unlearn", "finetune", True) == {"num_cpus": 2.0, "num_gpus": 0.25}
    assert resources_for(section, "train_original", None, True) == {"num_cpus": 2.0, "num_gpus": 1.0}  # built-in share
    assert resources_for({}, "relearn", None, True) == {"num_cpus": 1.0, "num_gpus": 0.25}
    assert resources_for({}, "train_original", None, False) == {
        "num_cpus": 1.0,
        "num_gpus": 0.0,
    }  # no GPU in the cluster
    assert "resources" not in method_defaults("tar")  # a worker's business, not a hyperparameter


def test_resources_do_not_change_keys_and_bad_ones_are_named(tmp_path):
    from orchestrator.plan import build_dag

    plain = build_dag(load_spec(tiny_quickstart(tmp_path / "a.yaml")))
    packed = build_dag(load_spec(tiny_quickstart(tmp_path / "b.yaml", resources={"unlearn": {"num_gpus": 0.25}})))
    assert [n.config for n in plain] == [n.config for n in packed]
    with pytest.raises(SpecError, match=r"resources.unlearnn: not a node kind"):
        load_spec(tiny_quickstart(tmp_path / "c.yaml", resources={"unlearnn": {"num_gpus": 1}}))
    with pytest.raises(SpecError, match=r"resources.unlearn.num_gpus: must be >= 0"):
        load_spec(tiny_quickstart(tmp_path / "d.yaml", resources={"unlearn": {"num_gpus": -1}}))
    with pytest.raises(SpecError, match=r"resources.unlearn"):
        load_spec(tiny_quickstart(tmp_path / "e.yaml", resources={"unlearn": {"gpus": 1}}))


@pytest.mark.deploy  # starts a local Ray
def test_asking_a_local_ray_for_a_gpu_it_lacks_is_bad_input(tmp_path, capsys):
    from orchestrator.cli import main

    sweep = tiny_quickstart(
        tmp_path / "q.yaml",
        tracking__artifact_location=str(tmp_path / "a"),
        resources={"train_original": {"num_gpus": 1}},
    )
    code = main(
        [
            "run",
            str(sweep),
            "--executor",
            "ray",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'm.db'}",
            "--summary",
            str(tmp_path / "s.json"),
        ]
    )
    assert code == 2 and "resources: a node asks for {'num_gpus': 1.0" in capsys.readouterr().err
