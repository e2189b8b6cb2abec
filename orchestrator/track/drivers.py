"""Which process holds a sweep's runs, and whether it can be proven dead.

A sweep's parent run and each of its claims carry the identity of the process that keeps them alive (its heartbeat):
host name, pid, and a fingerprint of the process on that machine (boot id, pid namespace, start time in clock ticks).
A later sweep on the same machine and in the same pid namespace can then tell at once that a claim's holder is gone,
its pid no longer running or now another process, and take the claim over without waiting for its heartbeat to go
stale. A holder on another machine (or in another container) is never proven dead this way: only a stale heartbeat,
or `run --resume` (the user saying the earlier run of this sweep is gone), takes its claims over."""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Optional

HOST, PID, PROCESS = "driver.host", "driver.pid", "driver.process"


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> Optional[str]:
    """The process's start time since boot in clock ticks (field 22 of /proc/PID/stat), a pid reused by another
    process having another; None when no process of that pid is running (a zombie has exited: it counts as gone)."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rsplit(")", 1)[1].split() if stat else None
    return fields[19] if fields and fields[0] not in ("Z", "X") else None


@functools.lru_cache(maxsize=1)
def _machine() -> str:
    """This boot of this machine, in this pid namespace (containers on one host each have their own)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{_read('/proc/sys/kernel/random/boot_id') or ''}/{namespace}"


def driver_tags() -> dict[str, str]:
    """Tags naming this process as the holder of the runs it creates."""
    pid = os.getpid()
    return {HOST: socket.gethostname(), PID: str(pid), PROCESS: f"{_machine()}/{_start_ticks(pid) or ''}"}


def proven_dead(tags: dict[str, str]) -> bool:
    """True only when the holder ran on this machine (same boot, same pid namespace) and its process is gone or its
    pid now belongs to another process. Runs without these tags (written before them) are never proven dead."""
    if tags.get(HOST) != socket.gethostname() or PID not in tags or PROCESS not in tags:
        return False
    machine, _, started = tags[PROCESS].rpartition("/")
    if machine != _machine():
        return False
    pid = int(tags[PID])
    if Path("/proc").is_dir():
        return _start_ticks(pid) != started  # None when no such process
    try:  # no /proc (macOS): whether any process has that pid
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def describe(tags: dict[str, str]) -> str:
    return f"pid {tags.get(PID, '?')} on {tags.get(HOST, '?')}"
