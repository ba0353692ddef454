"""Benchmark 5: import time of ``pecapi`` against ``aiohttp`` alone.

Fresh interpreters (``python -c "import X"``, also ``python -c "pass"`` for the
interpreter's own start), interleaved, wall time; medians; the start-up is subtracted.
One ``python -X importtime -c "import pecapi"`` run lists the modules that cost most.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs

from benchmarks.common import REPO_ROOT, Measure, child_env, median

__all__ = ["ImportsConfig", "run"]

STATEMENTS = {"bare": "pass", "aiohttp": "import aiohttp", "pecapi": "import pecapi"}


@attrs.frozen
class ImportsConfig:
    repeats: int = 21


def _wall(statement: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", statement],
        cwd=REPO_ROOT,
        env=child_env(),
        check=True,
        timeout=120,
    )
    return time.perf_counter() - started


def top_imports(module: str, count: int = 10) -> list[dict[str, Any]]:
    """Where ``import module`` spends its time: the self time of every module imported,
    summed by top-level package (``-X importtime``, one run), largest first."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    by_package: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|")
        package = name.strip().split(".")[0]
        by_package[package] = by_package.get(package, 0) + int(self_us)
    ranked = sorted(by_package.items(), key=lambda item: item[1], reverse=True)
    return [{"package": name, "self_ms": us / 1000} for name, us in ranked[:count]]


def run(config: ImportsConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for statement in STATEMENTS.values():  # warm the OS caches and .pyc files
        _wall(statement)
    for _ in range(config.repeats):
        for name, statement in STATEMENTS.items():
            times[name].append(_wall(statement))
    bare = median(times["bare"])
    pecapi_ms = (median(times["pecapi"]) - bare) * 1000
    aiohttp_ms = (median(times["aiohttp"]) - bare) * 1000
    log(
        f"  imports: interpreter {bare * 1000:.1f} ms, aiohttp +{aiohttp_ms:.1f} ms, "
        f"pecapi +{pecapi_ms:.1f} ms"
    )
    measures = [
        Measure(
            bench="imports",
            what="import time (interpreter start subtracted)",
            unit="ms",
            pecapi=pecapi_ms,
            baseline=aiohttp_ms,
            baseline_name="import aiohttp",
            note="pecapi imports aiohttp itself",
        )
    ]
    return measures, {
        "wall_s": times,
        "interpreter_ms": bare * 1000,
        "top_imports_of_pecapi": top_imports("pecapi"),
    }
