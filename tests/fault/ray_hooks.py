"""Runs in every Ray worker process of the fault tests (Ray's `worker_process_setup_hook`): the first worker to
start a node of kind $FAULT_EXIT_KIND ends its own process at once, as the kernel's OOM killer or Ray's memory
monitor ends a worker that ran out of memory (a real OOM on a shared CI machine is neither cheap nor safe to
provoke). The first to start a node of kind $FAULT_RAISE_KIND raises MemoryError in it instead, as an allocation
that fails inside the process does. Each once per test, across processes: the first to create the marker file
($FAULT_MARKER, and that name with `.raised`) does it."""

import os


def exit_once_in_kind() -> None:
    from orchestrator.execute.worker import NodeWorker

    run = NodeWorker.run

    def first(path: str, task) -> bool:
        try:
            with open(path, "x") as marker:
                marker.write(f"{os.getpid()} {task.key}\n")
            return True
        except FileExistsError:
            return False

    def run_or_die(self, task):
        if task.kind == os.environ.get("FAULT_EXIT_KIND") and first(os.environ["FAULT_MARKER"], task):
            os._exit(137)  # as a process SIGKILLed by an OOM killer reports itself: no cleanup, no exception
        if task.kind == os.environ.get("FAULT_RAISE_KIND") and first(os.environ["FAULT_MARKER"] + ".raised", task):
            raise MemoryError("simulated: the allocator could not find memory for this node")
        return run(self, task)

    NodeWorker.run = run_or_die


def note_mlflow_environment() -> None:
    """Each node a worker runs writes down, in $FAULT_PROBE/<its key>.json, the MLflow run variables its process
    has while the node runs (the worker must have dropped those it inherited from the driver)."""
    import json

    from orchestrator.execute.worker import NodeWorker

    run = NodeWorker.run
    names = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")

    def run_and_note(self, task):
        seen = {name: os.environ.get(name) for name in names}
        with open(os.path.join(os.environ["FAULT_PROBE"], f"{task.key}.json"), "w") as note:
            json.dump(seen, note)
        return run(self, task)

    NodeWorker.run = run_and_note
