"""Real servers on loopback for tests: an MLflow tracking server (sqlite backend) and moto's S3 server. Each starts
in its own session and is ended with its whole process group: `mlflow server` leaves helper processes behind
otherwise."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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


def mlflow_command(folder: Path, artifact_root: str, port: int) -> list[str]:
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
        "1",
        "--backend-store-uri",
        f"sqlite:///{folder / 'server.db'}",
        "--default-artifact-root",
        artifact_root,
        "--no-serve-artifacts",
    ]


@contextmanager
def mlflow_server(folder: Path, artifact_root: str, env: dict):
    port = free_port()
    with server(
        mlflow_command(folder, artifact_root, port),
        f"http://127.0.0.1:{port}/health",
        folder / "mlflow-server.log",
        env,
    ):
        yield f"http://127.0.0.1:{port}"
