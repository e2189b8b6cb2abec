"""The package as users install it: a wheel built from the repository carries the method defaults, resources and
sweep files, and once installed (outside any checkout) `unlearn-sweep plan` runs the shipped quickstart from any
folder, by name or by its repository path; and everything the code imports is declared."""

import ast
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.deploy

SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "orchestrator", "workloads", "configs"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel built from a copy of the sources (the checkout stays clean), installed into a folder of its own."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    # Without network access to a build index, build with the setuptools already installed where there is one.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", str(root / "dist"), str(source)],
        check=True,
        capture_output=True,
    )
    wheel = next((root / "dist").glob("unlearn_sweep-*.whl"))
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return {"wheel": wheel, "target": target, "cwd": elsewhere}


def run_installed(installed, *args):
    env = {**os.environ, "PYTHONPATH": str(installed["target"])}
    return subprocess.run(
        [sys.executable, *args], cwd=installed["cwd"], env=env, capture_output=True, text=True, timeout=300
    )


def test_the_wheel_carries_every_config_file(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    shipped = {
        f"orchestrator/configs/{p.relative_to(REPO / 'configs').as_posix()}" for p in (REPO / "configs").rglob("*.yaml")
    }
    assert shipped and shipped <= names


def test_the_installed_package_plans_the_quickstart_from_any_folder(installed):
    where = run_installed(
        installed, "-c", "import orchestrator.spec.files as f; print(f.__file__); print(f.CONFIG_DIR)"
    )
    module, config_dir = where.stdout.split()
    assert module.startswith(str(installed["target"])) and config_dir.startswith(str(installed["target"]))
    for name in ("quickstart", "configs/sweeps/quickstart.yaml"):
        done = run_installed(
            installed,
            "-m",
            "orchestrator",
            "plan",
            name,
            "--no-estimate",
            "--tracking-uri",
            f"sqlite:///{installed['cwd'] / 'plan.db'}",
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "175 nodes" in done.stdout + done.stderr
    missing = run_installed(installed, "-m", "orchestrator", "plan", "no_such_sweep", "--no-estimate")
    assert missing.returncode == 2 and "no_such_sweep" in missing.stderr + missing.stdout


def imported_distributions() -> dict[str, set[str]]:
    """Every third-party distribution the project's code imports (package, tests, benchmarks, docs' scripts), with a
    file that imports it."""
    local = {"orchestrator", "workloads", "tests", "benchmarks", "setup"}
    owners = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in [
        REPO / "setup.py",
        *(p for d in ("orchestrator", "workloads", "tests", "benchmarks", "docs") for p in (REPO / d).rglob("*.py")),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for top in {m.split(".")[0] for m in modules} - local - set(sys.stdlib_module_names):
                candidates = owners.get(top, [top])
                found.setdefault(" or ".join(sorted(candidates)), set()).add(str(path.relative_to(REPO)))
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_is_a_declared_dependency(installed):
    """What the wheel asks pip for (Requires-Dist, the test extra included) covers every distribution imported
    anywhere in the repository, so a fresh install never meets an ImportError that the developer's venv hid."""
    wheel = zipfile.ZipFile(installed["wheel"])
    metadata = wheel.read(next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    declared = {
        canonical(re.match(r"[A-Za-z0-9_.-]+", line.split(":", 1)[1].strip()).group())
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    declared |= {"setuptools"}  # the build backend, declared in [build-system]
    undeclared = {
        dist: sorted(files)[:3]
        for dist, files in imported_distributions().items()
        if not {canonical(d) for d in dist.split(" or ")} & declared
    }
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
