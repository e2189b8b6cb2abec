"""The code's shape, as the README promises it to a reader: the stages import only downward (and the contract that
says so does catch an upward import), functions stay short enough to read in one go, and a node's content key,
once known, never changes."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

MAX_FUNCTION_LINES = 50
PACKAGES = ("orchestrator", "workloads")


def test_no_function_of_the_packages_is_longer_than_a_screen():
    long = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """import-linter on a copy of the packages, with the contracts of pyproject.toml."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "module, imports, contract",
    [
        ("orchestrator/plan/upward.py", "import orchestrator.execute.state", "layers"),  # the plan reads no run state
        ("orchestrator/spec/upward.py", "from orchestrator.cli import main", "layers"),
        ("workloads/ray_inside.py", "import ray", "independent of the orchestrator"),
        ("orchestrator/report/circle.py", "import orchestrator.report.publish", None),  # allowed: report > report
    ],
)
def test_the_import_contract_breaks_on_an_upward_import(tmp_path, module, imports, contract):
    for name in (*PACKAGES, "pyproject.toml"):
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(
            REPO / name,
            tmp_path / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if name in PACKAGES else {}),
        )
    (tmp_path / module).write_text(f'"""A deliberate import."""\n\n{imports}\n')
    done = lint_imports(tmp_path)
    if contract is None:
        assert done.returncode == 0, done.stdout[-2000:]
        return
    assert done.returncode != 0, done.stdout[-2000:]
    verdicts = " ".join(done.stdout.split("Contracts\n")[-1].split("-------------------------------------")[1].split())
    broken = [name for name, verdict in re.findall(r"(.+?) (KEPT|BROKEN)", verdicts) if verdict == "BROKEN"]
    assert any(contract in name for name in broken), verdicts  # an upward import may close a cycle as well
    assert module.removesuffix(".py").replace("/", ".") in done.stdout


def test_a_nodes_key_is_set_once(tmp_path):
    from orchestrator.plan import build_dag
    from orchestrator.spec import load_spec
    from tests.conftest import tiny_quickstart

    node = build_dag(load_spec(tiny_quickstart(tmp_path / "q.yaml")), 20).nodes[0]
    node.key = "a" * 64
    node.key = "a" * 64  # the same key again is no change
    with pytest.raises(AttributeError, match="never changes"):
        node.key = "b" * 64
