"""Real servers on loopback for tests: an MLflow tracking server (sqlite or PostgreSQL backend), moto's S3 server and
a throwaway PostgreSQL cluster. Each starts in its own session and is ended with its whole process group: `mlflow
server` leaves helper processes behind otherwise."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(command: list[str], ready_url: str, log: Path, env: dict | None = None, timeout: float = 120):
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=2)
                break
            except urllib.error.HTTPError:  # it answers, if not to everyone (a Ray dashboard with token auth)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except ProcessLookupError:  # already gone: a test stopped it on purpose
            process.wait()
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@contextmanager
def moto_s3(folder: Path):
    port = free_port()
    with server(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        f"http://127.0.0.1:{port}/moto-api/",
        folder / "moto.log",
    ):
        yield f"http://127.0.0.1:{port}"


def mlflow_command(
    folder: Path, artifact_root: str, port: int, backend: str | None = None, workers: int = 1
) -> list[str]:
    """`backend`: the backend store URI (default: sqlite in `folder`); `workers`: the server's worker processes."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        backend or f"sqlite:///{folder / 'server.db'}",
        "--default-artifact-root",
        artifact_root,
        "--no-serve-artifacts",
    ]


# `mlflow server` over a database starts a job runner and seven huey consumers (MLflow's GenAI jobs), each a Python
# process importing MLflow: on a busy machine that took minutes. No test needs them.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@contextmanager
def mlflow_server(folder: Path, artifact_root: str, env: dict, backend: str | None = None):
    port = free_port()
    with server(
        mlflow_command(folder, artifact_root, port, backend),
        f"http://127.0.0.1:{port}/health",
        folder / "mlflow-server.log",
        {**MLFLOW_SERVER_ENV, **env},
    ):
        yield f"http://127.0.0.1:{port}"


POSTGRES_BIN = Path(os.environ.get("UNLEARN_SWEEP_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_available() -> bool:
    return (POSTGRES_BIN / "initdb").is_file() and (POSTGRES_BIN / "pg_ctl").is_file()


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` system user Debian's package creates."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres():
    """A throwaway PostgreSQL cluster on a loopback port, trust authentication, durability off (a test's data need not
    survive a power cut): yields a function that creates a fresh database and returns its SQLAlchemy URI. The cluster
    lives in a folder of its own under the system's temporary folder (a pytest folder is not reachable by another
    user) and is removed with it."""
    data = Path(tempfile.mkdtemp(prefix="unlearn-sweep-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(data, user.pw_uid, user.pw_gid)
    port, log = free_port(), data / "server.log"
    subprocess.run(
        _as_postgres_user([str(POSTGRES_BIN / "initdb"), "-D", str(data / "db"), "-U", "mlflow", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    settings = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c synchronous_commit=off"
    start = [str(POSTGRES_BIN / "pg_ctl"), "-D", str(data / "db"), "-l", str(log), "-o", settings, "-w", "start"]
    subprocess.run(_as_postgres_user(start), check=True, capture_output=True, start_new_session=True)
    created = []

    def database(template: str | None = None) -> str:
        """`template`: the name of a database to copy (one MLflow's migrations already ran on: they take seconds)."""
        name = f"mlflow{len(created)}"
        copy = ["-T", template] if template else []
        subprocess.run(
            [str(POSTGRES_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", *copy, name],
            check=True,
            capture_output=True,
        )
        created.append(name)
        return f"postgresql+psycopg2://mlflow@127.0.0.1:{port}/{name}"

    try:
        yield database
    finally:
        stop = [str(POSTGRES_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"]
        subprocess.run(_as_postgres_user(stop), capture_output=True)
        shutil.rmtree(data, ignore_errors=True)
