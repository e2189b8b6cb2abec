"""The deployment files under cluster/ and docker/: parsed and cross-checked, without network, Docker or Kubernetes.

Each test names a fact that a real deployment depends on: one Ray version across images, manifests and the launcher;
every Ray process given the tracking URI and the S3 credentials (from the environment, never literal); the MLflow
server on Postgres with an S3 artifact root it does not proxy; sweeps and data paths that exist and match.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parents[1]
CLUSTER, DOCKER = ROOT / "cluster", ROOT / "docker"
WORKER_DOCKERFILE = DOCKER / "worker.Dockerfile"
CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
TRACKING_ENV = {"MLFLOW_TRACKING_URI"} | CREDENTIALS
PLACEHOLDER = re.compile(r"change-me|REPLACE|^\.\.\.$|^$")
SWEEP_PATH = re.compile(r"configs/sweeps/[\w./-]+\.yaml")
COMPOSE_VAR = re.compile(r"(?<!\$)\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict]:
    return list(yaml.safe_load_all(path.read_text()))


def dockerfile_args(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S*)", path.read_text(), re.M))


ARGS = dockerfile_args(WORKER_DOCKERFILE)
RAY_VERSION, PYTHON_TAG = ARGS["RAY_VERSION"], ARGS["PYTHON"]


def deployment_files() -> list[Path]:
    return sorted(p for d in (CLUSTER, DOCKER) for p in d.rglob("*") if p.is_file())


def gitignored(folder: Path) -> set[str]:
    path = folder / ".gitignore"
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, commented-out ones excluded."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if re.match(r"^\w+=", line))


def kuberay_specs() -> dict[str, dict]:
    (cluster,) = load_all(CLUSTER / "kuberay-raycluster.yaml")
    (job,) = load_all(CLUSTER / "kuberay-rayjob.yaml")
    return {"RayCluster": cluster["spec"], "RayJob": job["spec"]["rayClusterSpec"]}


def pod_templates(spec: dict) -> list[dict]:
    return [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]


def rayjob_command() -> tuple[str, list[str]]:
    """(directory the entrypoint changes to, the unlearn-sweep argv)."""
    (job,) = load_all(CLUSTER / "kuberay-rayjob.yaml")
    cd, _, command = job["spec"]["entrypoint"].partition("&&")
    assert cd.split()[0] == "cd", "the entrypoint runs from the image's project folder, where configs/ is"
    return cd.split()[1], shlex.split(command)


def sweep_argv(argv: list[str]) -> tuple[str, list[str], dict[str, str]]:
    """unlearn-sweep run CONFIG [overrides] [--opt value] -> (config, overrides, options)."""
    assert argv[:2] == ["unlearn-sweep", "run"], argv
    options, rest, i = {}, [], 2
    while i < len(argv):
        if argv[i].startswith("--"):
            options[argv[i]] = argv[i + 1]
            i += 2
        else:
            rest.append(argv[i])
            i += 1
    return rest[0], rest[1:], options


def test_every_yaml_file_parses():
    files = [p for p in deployment_files() if p.suffix in (".yaml", ".yml")]
    assert {
        "aws-gpu.yaml",
        "kuberay-raycluster.yaml",
        "kuberay-rayjob.yaml",
        "kuberay-env.example.yaml",
        "compose.yaml",
    } <= {p.name for p in files}
    for path in files:
        documents = load_all(path)
        assert documents and all(isinstance(d, dict) for d in documents), path


def test_one_ray_version_everywhere():
    launcher = load(CLUSTER / "aws-gpu.yaml")
    base = re.search(r"^FROM (\S+)", WORKER_DOCKERFILE.read_text(), re.M).group(1)
    assert re.sub(r"\$\{(\w+)\}", lambda m: ARGS[m.group(1)], base) == launcher["docker"]["image"]
    assert launcher["docker"]["image"] == f"rayproject/ray:{RAY_VERSION}-{PYTHON_TAG}-gpu"
    pins = re.findall(r"ray\[[\w,]+\]==([\w.]+)", " ".join(launcher["setup_commands"]))
    assert pins == [RAY_VERSION], "the launcher's pip line must keep the image's Ray"
    for kind, spec in kuberay_specs().items():
        assert spec["rayVersion"] == RAY_VERSION, kind
        for pod in pod_templates(spec):
            for container in pod["containers"] + pod.get("initContainers", []):
                assert container["image"].endswith(f":ray{RAY_VERSION}-{PYTHON_TAG}-gpu"), (kind, container["name"])
    compose = load(DOCKER / "compose.yaml")
    assert compose["services"]["worker"]["image"].endswith(f":ray{RAY_VERSION}-{PYTHON_TAG}-gpu")
    readme = (CLUSTER / "README.md").read_text()
    assert set(re.findall(r"\b2\.\d+\.\d+\b", readme)) == {RAY_VERSION}


def test_launcher_config_is_valid_for_the_ray_autoscaler():
    config = load(CLUSTER / "aws-gpu.yaml")
    for key in ("cluster_name", "provider", "available_node_types", "head_node_type"):
        assert key in config, key
    assert config["provider"]["type"] == "aws" and config["provider"]["region"]
    assert config["head_node_type"] in config["available_node_types"]
    util = pytest.importorskip("ray.autoscaler._private.util")
    pytest.importorskip("jsonschema")
    util.validate_config(util.prepare_config(copy.deepcopy(config)))  # Ray's own schema and checks, as `ray up` does


def test_launcher_gpu_workers_can_write_to_s3():
    config = load(CLUSTER / "aws-gpu.yaml")
    workers = {name: t for name, t in config["available_node_types"].items() if name != config["head_node_type"]}
    assert workers
    for name, node_type in workers.items():
        assert re.match(r"(g4dn|g5|g6e?|p3|p4de?|p5)\.", node_type["node_config"]["InstanceType"]), name
        assert node_type["max_workers"] >= node_type.get("min_workers", 0) and node_type["max_workers"] > 0
        # No keys in the env file by default: S3 credentials come from the instance profile.
        assert node_type["node_config"]["IamInstanceProfile"], name
    assert config["max_workers"] >= sum(t.get("min_workers", 0) for t in workers.values())


def test_launcher_ray_processes_read_the_tracking_env_file():
    config = load(CLUSTER / "aws-gpu.yaml")
    mounts = config["file_mounts"]
    repo = [remote for remote, local in mounts.items() if (ROOT / local).resolve() == ROOT]
    assert repo, "the repository is synced to every node"
    ((env_remote, env_local),) = [(remote, local) for remote, local in mounts.items() if local.endswith(".env")]
    assert (ROOT / f"{env_local}.example").is_file()
    assert Path(env_local).name in gitignored(CLUSTER)
    # The launcher's rsync drops what rsync_exclude or a per-directory filter file (.gitignore) names.
    assert not any(fnmatch.fnmatch(Path(env_local).name, p) for p in config.get("rsync_exclude", []))
    for filter_file in config.get("rsync_filter", []):
        listed = (ROOT / env_local).parent / filter_file
        assert not listed.is_file() or Path(env_local).name not in listed.read_text().split(), filter_file
    assert "MLFLOW_TRACKING_URI" in env_file(ROOT / f"{env_local}.example")
    starts = [c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c]
    assert len(starts) == 2
    for command in starts:
        assert f". {env_remote}" in command and command.index(f". {env_remote}") < command.index("ray start"), command
        assert "set -a" in command, "variables must be exported to reach Ray's processes"
    setup = " ".join(config["setup_commands"])
    assert f"pip install -q -e {repo[0]}" in setup
    for script in re.findall(rf"{re.escape(repo[0])}/(\S+\.sh)", setup):
        assert (ROOT / script).is_file(), script


def test_no_credentials_in_deployment_files():
    for path in deployment_files() + [CLUSTER / "README.md"]:
        text = path.read_text()
        assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text), path
        # KEY=value / KEY: value, not ${KEY:?message} (a reference); the value must be a reference or a placeholder.
        for key, value in re.findall(
            r"(?<![{\w])(\w*(?:SECRET_ACCESS_KEY|PASSWORD))[\"']?\s*[:=]\s*[\"']?([^\s,'\"]*)", text
        ):
            assert value.startswith("$") or PLACEHOLDER.search(value), f"{path.name}: {key}={value}"
    assert ".env" in gitignored(DOCKER)


def test_kuberay_manifests_are_ray_io_v1():
    (cluster,) = load_all(CLUSTER / "kuberay-raycluster.yaml")
    (job,) = load_all(CLUSTER / "kuberay-rayjob.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"], "the RayJob's cluster is the RayCluster's"


def test_every_kuberay_ray_container_gets_tracking_and_s3_env():
    objects = {(d["kind"], d["metadata"]["name"]): d for d in load_all(CLUSTER / "kuberay-env.example.yaml")}
    for (kind, name), obj in objects.items():
        values = obj.get("stringData", obj.get("data"))
        if kind == "Secret":
            assert all(PLACEHOLDER.search(v) for v in values.values()), "the example holds placeholders only"
        assert all(values.values()), f"{name}: an empty value (e.g. MLFLOW_S3_ENDPOINT_URL) breaks boto3"
    for kind, spec in kuberay_specs().items():
        for pod in pod_templates(spec):
            for container in pod["containers"]:
                names = {e["name"] for e in container.get("env", [])}
                for source in container.get("envFrom", []):
                    if "secretRef" in source:
                        obj = objects[("Secret", source["secretRef"]["name"])]
                        names |= set(obj["stringData"])
                    else:
                        obj = objects[("ConfigMap", source["configMapRef"]["name"])]
                        names |= set(obj["data"])
                        assert not CREDENTIALS & set(obj["data"]), "S3 keys belong in a Secret"
                assert names >= TRACKING_ENV, (kind, container["name"], TRACKING_ENV - names)
                for literal in container.get("env", []):
                    assert literal["name"] not in CREDENTIALS or "secretKeyRef" in literal.get("valueFrom", {})


def test_kuberay_head_and_gpu_workers():
    for kind, spec in kuberay_specs().items():
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert {8265, 10001, 6379} <= {p["containerPort"] for p in head["ports"]}, kind
        assert "nvidia.com/gpu" not in head["resources"].get("limits", {})
        limits = {
            g["groupName"]: g["template"]["spec"]["containers"][0]["resources"]["limits"]
            for g in spec["workerGroupSpecs"]
        }
        gpu_groups = [g for g in spec["workerGroupSpecs"] if int(limits[g["groupName"]].get("nvidia.com/gpu", 0)) >= 1]
        assert gpu_groups, kind
        for group in gpu_groups:
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"] and group["maxReplicas"] > 0


def test_rayjob_runs_a_sweep_on_the_cluster_and_shuts_it_down():
    (job,) = load_all(CLUSTER / "kuberay-rayjob.yaml")
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    workdir, argv = rayjob_command()
    assert workdir == re.search(r"^WORKDIR (\S+)", WORKER_DOCKERFILE.read_text(), re.M).group(1)
    config, overrides, options = sweep_argv(argv)
    assert options["--executor"] == "ray" and options["--address"] == "auto"
    assert (ROOT / config).is_file()
    from orchestrator.spec import load_spec

    load_spec(ROOT / config, overrides)  # every key=value names a real key of the sweep


def test_data_paths_are_where_fetch_data_puts_them(tmp_path):
    _, argv = rayjob_command()
    _, overrides, _ = sweep_argv(argv)
    paths = dict(o.split("=", 1) for o in overrides if "=" in o)  # bare words are profile names
    root, scores = Path(paths["dataset.args.root"]), Path(paths["memorization.scores_file"])
    for spec in kuberay_specs().values():
        for pod in pod_templates(spec):
            (init,) = pod["initContainers"]
            script, dest = init["command"][-2:]
            assert (ROOT / Path(script).relative_to(rayjob_command()[0])).is_file(), script
            for container in pod["containers"] + [init]:
                mounts = {m["mountPath"] for m in container["volumeMounts"]}
                assert dest in mounts and root.is_relative_to(dest) and scores.is_relative_to(dest), container["name"]
    launcher = load(CLUSTER / "aws-gpu.yaml")
    (fetch,) = [c for c in launcher["setup_commands"] if "fetch-data.sh" in c]
    assert fetch.split()[-1].replace("~", "/home/ray") == dest, "the launcher stages data where the overrides point"

    # The script, offline, on files already at the override paths: it must find them all and download nothing.
    from workloads.data.cifar import layout

    lay = layout("cifar10")
    fake_root = tmp_path / root.relative_to(dest) / lay.folder
    fake_root.mkdir(parents=True)
    for name, _ in lay.train_files + lay.test_files:
        (fake_root / name).touch()
    fake_scores = tmp_path / scores.relative_to(dest)
    fake_scores.parent.mkdir(parents=True)
    np.savez(fake_scores, labels=np.zeros(3), scores=np.zeros(3))
    dead_proxy = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "http_proxy": dead_proxy,
        "https_proxy": dead_proxy,
        "HTTP_PROXY": dead_proxy,
        "HTTPS_PROXY": dead_proxy,
    }
    done = subprocess.run(
        ["bash", str(CLUSTER / "fetch-data.sh"), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_compose_stores_have_volumes_and_healthchecks():
    compose = load(DOCKER / "compose.yaml")
    services = compose["services"]
    assert {"postgres", "minio", "create-bucket", "mlflow", "worker"} <= set(services)
    for name, data_dir in (("postgres", "/var/lib/postgresql/data"), ("minio", services["minio"]["command"][1])):
        service = services[name]
        assert service["healthcheck"]["test"], name
        volume, target = service["volumes"][0].split(":")[:2]
        assert volume in compose["volumes"] and target == data_dir, name


def server_args(command: list[str]) -> dict[str, str | None]:
    """`--flag=value` and `--flag value` items of a command list; a flag without a value maps to None."""
    args: dict[str, str | None] = {}
    for arg, following in zip(command, command[1:] + [None]):
        if arg.startswith("--"):
            key, eq, value = arg.partition("=")
            args[key] = value if eq else (following if following and not following.startswith("--") else None)
    return args


def test_compose_mlflow_server_uses_postgres_and_unproxied_s3():
    services = load(DOCKER / "compose.yaml")["services"]
    mlflow = services["mlflow"]
    assert mlflow["command"][:2] == ["mlflow", "server"]
    args = server_args(mlflow["command"])
    # The backend URI holds the database password: from the environment, never on the command line.
    assert "--backend-store-uri" not in args
    backend, artifacts = mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"], args["--default-artifact-root"]
    scheme, _, rest = backend.partition("://")
    assert scheme.split("+")[0] == "postgresql" and "@postgres:5432/" in rest
    assert "+" in scheme, "name the driver: SQLAlchemy's default for postgresql:// changed between versions"
    driver_package = {"psycopg2": "psycopg2-binary", "psycopg": "psycopg[binary]"}[scheme.split("+")[1]]
    dockerfile = (DOCKER / mlflow["build"]["context"] / mlflow["build"]["dockerfile"]).resolve()
    assert driver_package in dockerfile.read_text() and "mlflow==" in dockerfile.read_text()
    bucket = re.match(r"s3://([^/]+)/", artifacts).group(1)
    assert "--no-serve-artifacts" in args, "clients must write checkpoints to S3 themselves"
    assert args["--host"] == "0.0.0.0" and args["--port"] == "5000" and "5000:5000" in mlflow["ports"]
    assert re.search(rf"^mc mb (--ignore-existing )?local/{bucket}$", services["create-bucket"]["command"][0], re.M)
    assert mlflow["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
        "create-bucket": {"condition": "service_completed_successfully"},
    }
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["healthcheck"]["test"]


def allowed(host: str, patterns: str) -> bool:
    """MLflow's Host-header check (mlflow.server.security_utils): fnmatch when a pattern has '*', else equality."""
    return any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in patterns.split(","))


def test_compose_worker_runs_a_sweep_against_the_stack():
    services = load(DOCKER / "compose.yaml")["services"]
    worker = services["worker"]
    assert "sweep" in worker["profiles"]
    assert worker["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert worker["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert TRACKING_ENV - {"MLFLOW_TRACKING_URI"} <= set(worker["environment"])
    assert worker["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert (DOCKER / worker["build"]["context"]).resolve() == ROOT
    assert (ROOT / worker["build"]["dockerfile"]).resolve() == WORKER_DOCKERFILE
    config, _, options = sweep_argv(worker["command"])
    assert (ROOT / config).is_file() and options["--executor"] == "ray"
    # The server must answer the worker (mlflow:5000) and its own healthcheck (localhost:5000).
    default = COMPOSE_VAR.search(server_args(services["mlflow"]["command"])["--allowed-hosts"])
    for patterns in (default.group(3), env_file(DOCKER / "env.example")[default.group(1)]):
        assert allowed("mlflow:5000", patterns) and allowed("localhost:5000", patterns), patterns


def test_compose_credentials_come_from_the_env_file():
    text = (DOCKER / "compose.yaml").read_text()
    example = env_file(DOCKER / "env.example")
    used = {m.group(1) for m in COMPOSE_VAR.finditer(text)}
    assert used <= set(example), f"not in docker/env.example: {used - set(example)}"
    for key, value in example.items():
        if re.search(r"PASSWORD|SECRET", key):
            assert "change-me" in value, key
    for name, service in load(DOCKER / "compose.yaml")["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY|ROOT_USER", key):
                assert str(value).startswith("${"), f"{name}: {key} must come from docker/.env"


def test_worker_image_is_a_non_root_ray_image_with_the_project():
    text = WORKER_DOCKERFILE.read_text()
    assert re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-\$\{PYTHON\}-gpu$", text, re.M)
    assert re.search(r'pip install [^\n]* \. "ray\[[\w,]*tune[\w,]*\]==\$\{RAY_VERSION\}"', text)
    assert " -e " not in text  # the package is installed as a wheel, its configs inside it
    assert re.search(r"pip wheel [^\n]*--no-deps -w (\S+) \. && pip install [^\n]*--no-deps \1/\*\.whl", text)
    copied = set(re.findall(r"^COPY \S+ (\w+) \1$", text, re.M))
    # The sources the wheel is built from, and cluster/ for the job scripts run from the workdir.
    assert {"orchestrator", "workloads", "configs", "cluster"} <= copied
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    ignore = (DOCKER / "worker.Dockerfile.dockerignore").read_text().splitlines()
    patterns = {line.removeprefix("**/") for line in ignore if line and not line.startswith("#")}
    assert {"mlruns", "mlartifacts", "mlflow.db", ".venv", "data", "__pycache__"} <= patterns


def test_paths_named_in_the_deployment_files_exist():
    ignored = {f"cluster/{p}" for p in gitignored(CLUSTER)} | {f"docker/{p}" for p in gitignored(DOCKER)}
    for path in deployment_files() + [CLUSTER / "README.md"]:
        text = path.read_text()
        for sweep in SWEEP_PATH.findall(text):
            assert (ROOT / sweep).is_file(), f"{path.name}: {sweep}"
        if path.suffix == ".md":
            for named in re.findall(r"\b((?:cluster|docker|tests)/[\w./-]*\w)", text):
                assert (ROOT / named).exists() or named in ignored, f"{path.name}: {named}"


SECRET_VARIABLE = re.compile(r"\$\$?\{?(\w*(?:PASSWORD|SECRET\w*|AUTH_TOKEN))\b")


def test_no_secret_on_a_command_line():
    """Compose commands and the launcher's commands name no secret, except as an argument of the shell's builtin
    printf piped into a program (no process carries it in its argv); the MLflow server, mc's alias, the Ray token and
    the S3 keys all come from the environment."""
    for name, service in load(DOCKER / "compose.yaml")["services"].items():
        command = service.get("command") or []
        for line in "\n".join(command if isinstance(command, list) else [command]).splitlines():
            if SECRET_VARIABLE.search(line):
                assert re.match(r"\s*printf '%s\\n' \"\$\$\w+\" \| mc ", line), f"{name}: {line}"
    config = load(CLUSTER / "aws-gpu.yaml")
    commands = config["setup_commands"] + config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert not [c for c in commands if SECRET_VARIABLE.search(c) or "RAY_AUTH_TOKEN=" in c]


def test_every_ray_cluster_asks_for_a_token():
    """Ray's dashboard and Jobs API run code for whoever reaches them: token authentication on every cluster."""
    for kind, spec in kuberay_specs().items():
        assert spec["authOptions"] == {"mode": "token"}, kind
    config = load(CLUSTER / "aws-gpu.yaml")
    secrets = (CLUSTER / "secrets.sh").read_text()
    assert "export RAY_AUTH_MODE=token" in secrets and re.search(r"RAY_AUTH_TOKEN=\S*ssm_secret", secrets)
    assert "aws ssm get-parameter --with-decryption" in secrets
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        if "ray start" in command:
            assert command.index("secrets.sh") < command.index("ray start"), command
    readme = (CLUSTER / "README.md").read_text()
    assert "RAY_AUTH_MODE=token" in readme and "auth_token" in readme  # how the submitting side authenticates


def test_the_synced_env_file_holds_no_secret():
    """`ray up` copies cluster/unlearn-sweep.env to every node: the example has no secret key, set or commented."""
    text = (CLUSTER / "unlearn-sweep.env.example").read_text()
    assert not re.search(r"^\s*#?\s*(AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|RAY_AUTH_TOKEN)\s*=", text, re.M)
