"""The lab's tracking stack, for the tests of store semantics (claims, heartbeats, takeovers, outages): an `mlflow
server` over PostgreSQL with its artifacts in S3 (moto's server), beside the sqlite store. One PostgreSQL cluster and
one moto server per test session; per test a fresh database, copied from one that MLflow's migrations already ran on
(they take seconds on every start otherwise), a bucket of its own, and the tracking server over them, which a test
may stop and start again over the same database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import (
    MLFLOW_SERVER_ENV,
    POSTGRES_BIN,
    free_port,
    mlflow_command,
    moto_s3,
    postgres,
    postgres_available,
    server,
)

# Made-up keys for moto; what a driver and the test's own clients need to reach the bucket.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAUNLEARNSWEEPPG",
    "AWS_SECRET_ACCESS_KEY": "postgres-stack-test-key",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# `mlflow server` takes 10-30 s to answer on two cores (its app imported in the worker); on a machine shared with other
# jobs it took over 120 s.
SERVER_START_SECONDS = 600


def migrate(uri: str) -> None:
    """MLflow's tables, created in the database at `uri` as `mlflow server` creates them on an empty one."""
    from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine

    engine = create_sqlalchemy_engine(uri)
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()  # a template database must have no open connection when it is copied


@pytest.fixture(scope="session")
def postgres_databases():
    """A function making a fresh PostgreSQL database with MLflow's tables; one cluster for the whole session."""
    if not postgres_available():
        pytest.skip(
            f"PostgreSQL 15 is not installed in {POSTGRES_BIN} (initdb, pg_ctl): install it or point "
            "UNLEARN_SWEEP_POSTGRES_BIN at its bin folder"
        )
    with postgres() as database:
        template = database()
        migrate(template)
        yield lambda: database(template.rsplit("/", 1)[1])


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("moto")) as endpoint:
        yield endpoint


@dataclass
class LabStack:
    """One test's PostgreSQL database and S3 bucket; `serve` starts the tracking server over them."""

    folder: Path
    db: str  # the database's SQLAlchemy URI
    artifact_root: str  # s3://BUCKET/artifacts
    env: dict = field(default_factory=dict)  # what a client needs for the bucket

    @contextmanager
    def serve(self, port: int | None = None):
        """`mlflow server` over the database on `port` (default: a free one): (its URI, its process)."""
        port = port or free_port()
        with server(
            mlflow_command(self.folder, self.artifact_root, port, self.db),
            f"http://127.0.0.1:{port}/health",
            self.folder / f"mlflow-server-{port}.log",
            {**MLFLOW_SERVER_ENV, **self.env},
            timeout=SERVER_START_SECONDS,
        ) as process:
            yield f"http://127.0.0.1:{port}", process


@pytest.fixture
def lab_stack(postgres_databases, s3_endpoint, tmp_path, monkeypatch):
    """A fresh database and bucket; the S3 settings are in this process's environment for the test (so its own
    clients and the drivers it starts reach the bucket)."""
    import boto3

    env = {**CREDENTIALS, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = f"lab-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    folder = tmp_path / "lab"
    folder.mkdir()
    return LabStack(folder, postgres_databases(), f"s3://{bucket}/artifacts", env)


@dataclass
class Backend:
    """A store a sweep records into: `uri` for --tracking-uri, `db` the SQLAlchemy URI of the database behind it (what
    the tests' helpers read directly), `artifacts` the experiment's artifact location."""

    name: str
    uri: str
    db: str
    artifacts: str


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request, tmp_path):
    """Each test using it runs twice: on a sqlite file, and through an `mlflow server` over PostgreSQL with S3
    artifacts (running for the whole test)."""
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        yield Backend("sqlite", uri, uri, str(tmp_path / "artifacts"))
        return
    stack = request.getfixturevalue("lab_stack")
    with stack.serve() as (uri, _):
        yield Backend("postgres", uri, stack.db, stack.artifact_root)


@dataclass
class Served:
    """A tracking server a test starts, stops and starts again on one port over one database: `serve(port)` yields
    (its URI, its process); `db` and `artifacts` as in Backend."""

    name: str
    serve: Callable
    db: str
    artifacts: str


@pytest.fixture(params=["sqlite", "postgres"])
def served(request, tmp_path):
    """An `mlflow server` over a sqlite file, or over PostgreSQL with S3 artifacts: the test starts it."""
    if request.param == "sqlite":

        @contextmanager
        def serve(port):
            with server(
                mlflow_command(tmp_path, str(tmp_path / "artifacts"), port),
                f"http://127.0.0.1:{port}/health",
                tmp_path / f"mlflow-server-{port}.log",
                MLFLOW_SERVER_ENV,
                timeout=SERVER_START_SECONDS,
            ) as process:
                yield f"http://127.0.0.1:{port}", process

        return Served("sqlite", serve, f"sqlite:///{tmp_path / 'server.db'}", str(tmp_path / "artifacts"))
    stack = request.getfixturevalue("lab_stack")
    return Served("postgres", stack.serve, stack.db, stack.artifact_root)
