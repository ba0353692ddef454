"""What the benchmarks share: the emulator server process, child processes, statistics,
the memory counters of ``/proc/self/status``, a process's CPU time from
``/proc/<pid>/stat``, a counter of gen0 garbage collections, and the list of what a run
skipped (a peer, a tool or an extra that is not installed)."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "REPO_ROOT",
    "RESULTS_DIR",
    "Gen0Counter",
    "Measure",
    "ServerInfo",
    "child_env",
    "client_limits",
    "emulator_server",
    "installed",
    "median",
    "memory_kb",
    "process_cpu_s",
    "run_child",
    "skip",
    "skipped",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"

#: Seconds a child process (or the server's start) may take before it is killed.
CHILD_TIMEOUT = 600.0
SERVER_START_TIMEOUT = 30.0


def client_limits(concurrency: int) -> dict[str, Any]:
    """The ``PecClient`` keyword that sets how many requests may be in flight at once
    (``max_in_flight``; ``connection_limit`` before the retry/throttle work), so that the
    client is never the bottleneck of a run at ``concurrency``."""
    import inspect

    import pecapi

    parameters = inspect.signature(pecapi.PecClient).parameters
    for name in ("max_in_flight", "connection_limit"):
        if name in parameters:
            return {name: max(concurrency, 1)}
    return {}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def memory_kb() -> dict[str, int]:
    """``VmHWM`` (peak resident set) and ``VmRSS`` of this process, in KiB (Linux)."""
    found: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0])
    return found


def process_cpu_s(pid: int) -> float | None:
    """CPU time (user + system, seconds) process ``pid`` has used so far, from
    ``/proc/<pid>/stat`` (Linux; None elsewhere). Clock-tick resolution (10 ms): fine for
    a run of seconds. Used for the server's CPU, which runs in a process of its own."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


class Gen0Counter:
    """Counts the garbage collector's collections while active (``gc.callbacks``):
    ``with Gen0Counter() as gen0: ...``. ``count`` is the generation-0 collections,
    ``all`` every collection (each starts when gen0's allocation threshold is crossed;
    one in ~10 then goes on to gen1, one in ~100 to gen2, and is reported as such)."""

    def __init__(self) -> None:
        self.count = 0
        self.all = 0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.all += 1
            if info.get("generation") == 0:
                self.count += 1

    def __enter__(self) -> Gen0Counter:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


@attrs.frozen
class Skip:
    what: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"what": self.what, "reason": self.reason}


#: What the current run left out, and why (printed under the table, saved in latest.json).
_SKIPPED: list[Skip] = []


def skip(what: str, reason: str, log: Callable[[str], None] | None = None) -> None:
    """Record that ``what`` (a client, a benchmark, a mode) was left out, and why."""
    _SKIPPED.append(Skip(what, reason))
    if log is not None:
        log(f"  skipped {what}: {reason}")


def skipped() -> list[Skip]:
    """What the run has left out so far, in order."""
    return list(_SKIPPED)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def child_env() -> dict[str, str]:
    """The environment of a child process: ``benchmarks`` importable from the repo root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("PYTHONDEVMODE", None)
    return env


@attrs.frozen
class ServerInfo:
    """What ``benchmarks.server`` printed once it was serving."""

    url: str
    token: str
    mailbox: str  #: an ``evasa`` mailbox (for GET /pec/{id})
    registrata: tuple[str, ...]  #: mailboxes that accept one activation each
    pid: int


@contextmanager
def emulator_server(
    *, latency: float = 0.0, credit: str = "1000", registrata: int = 0
) -> Iterator[ServerInfo]:
    """Run ``python -m benchmarks.server`` (the emulator, seeded) until the block exits."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.server",
        "--latency",
        str(latency),
        "--credit",
        credit,
        "--registrata",
        str(registrata),
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, env=child_env(), stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        line = ""
        while not line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the emulator server did not start (exit code {proc.poll()})")
        info = json.loads(line)
        yield ServerInfo(
            url=info["url"],
            token=info["token"],
            mailbox=info["mailbox"],
            registrata=tuple(info["registrata"]),
            pid=proc.pid,
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def run_child(module: str, args: Sequence[str], timeout: float = CHILD_TIMEOUT) -> Any:
    """Run ``python -m benchmarks.<module> args...``; its last stdout line, parsed as JSON."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"benchmarks.{module} failed ({done.returncode}):\n{done.stderr[-3000:]}"
        )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1])


@attrs.define
class Measure:
    """One row of the results table: a figure of pecapi against its baseline."""

    bench: str
    what: str
    unit: str
    pecapi: float
    baseline: float
    baseline_name: str
    #: the ratio pecapi / baseline must be <= target ("max") or >= target ("min")
    target: float | None = None
    target_kind: str = "max"
    note: str = ""

    @property
    def ratio(self) -> float:
        if self.baseline == 0:
            # Nothing against nothing (no gen0 collection on either side) is even.
            return 1.0 if self.pecapi == 0 else float("inf")
        return self.pecapi / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.target_kind == "min":
            return self.ratio >= self.target
        return self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "what": self.what,
            "unit": self.unit,
            "pecapi": self.pecapi,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "target": self.target,
            "target_kind": self.target_kind,
            "met": self.met,
            "note": self.note,
        }
