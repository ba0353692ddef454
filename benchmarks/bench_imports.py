"""Benchmark 5: import time of ``pecapi`` against ``aiohttp`` alone.

Fresh interpreters (``python -c "import X"``, also ``python -c "pass"`` for the
interpreter's own start), interleaved, wall time; medians; the start-up is subtracted.
Two ratios:

- with compiled bytecode (the ``.pyc`` files written by an earlier import or by pip at
  install): what every start of an installed pecapi costs;
- without it: a copy of the ``pecapi`` package with no ``__pycache__``, imported with
  ``PYTHONDONTWRITEBYTECODE=1`` (a source checkout in a container that sets it): pecapi
  is compiled on every start; aiohttp and the standard library still have theirs.

One ``python -X importtime -c "import pecapi"`` run lists the modules that cost most.

With ``icount`` (``python -m benchmarks --icount``), the same three statements also run
once each under valgrind (``bench_icount.VALGRIND``, ``PYTHONHASHSEED=0``): instructions
of ``import X`` minus those of ``pass``, a ratio that does not move with the machine's
load (it leaves out the kernel's file reads, which wall time includes).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from benchmarks.common import REPO_ROOT, Measure, child_env, median, skip

__all__ = ["ImportsConfig", "run"]

STATEMENTS = {"bare": "pass", "aiohttp": "import aiohttp", "pecapi": "import pecapi"}


@attrs.frozen
class ImportsConfig:
    repeats: int = 21
    icount: bool = False


def _wall(statement: str, cwd: Path = REPO_ROOT, env: Mapping[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", statement],
        cwd=cwd,
        env=dict(env) if env is not None else _env(),
        check=True,
        timeout=120,
    )
    return time.perf_counter() - started


def _env() -> dict[str, str]:
    env = child_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _source_only_copy(into: Path) -> Path:
    """A copy of the ``pecapi`` package without its bytecode, in ``into``."""
    import pecapi

    source = Path(pecapi.__file__).resolve().parent
    shutil.copytree(source, into / "pecapi", ignore=shutil.ignore_patterns("__pycache__"))
    return into


def top_imports(module: str, count: int = 10) -> list[dict[str, Any]]:
    """Where ``import module`` spends its time: the self time of every module imported,
    summed by top-level package (``-X importtime``, one run), largest first."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=REPO_ROOT,
        env=_env(),
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
    times: dict[str, list[float]] = {name: [] for name in (*STATEMENTS, "pecapi_source")}
    with tempfile.TemporaryDirectory(prefix="pecapi-imports-") as tmp:
        source_dir = _source_only_copy(Path(tmp))
        no_bytecode = {**_env(), "PYTHONDONTWRITEBYTECODE": "1"}
        for statement in STATEMENTS.values():  # warm the OS caches and .pyc files
            _wall(statement)
        for _ in range(config.repeats):
            for name, statement in STATEMENTS.items():
                times[name].append(_wall(statement))
            times["pecapi_source"].append(_wall("import pecapi", source_dir, no_bytecode))
        leftover = list(source_dir.rglob("__pycache__"))
    if leftover:
        raise RuntimeError(f"bytecode was written with PYTHONDONTWRITEBYTECODE=1: {leftover}")
    bare = median(times["bare"])
    pecapi_ms = (median(times["pecapi"]) - bare) * 1000
    aiohttp_ms = (median(times["aiohttp"]) - bare) * 1000
    source_ms = (median(times["pecapi_source"]) - bare) * 1000
    log(
        f"  imports: interpreter {bare * 1000:.1f} ms, aiohttp +{aiohttp_ms:.1f} ms, "
        f"pecapi +{pecapi_ms:.1f} ms (+{source_ms:.1f} ms compiled on every start)"
    )
    measures = [
        Measure(
            bench="imports",
            what="import time, compiled bytecode (interpreter start subtracted)",
            unit="ms",
            pecapi=pecapi_ms,
            baseline=aiohttp_ms,
            baseline_name="import aiohttp",
            target=1.3,
            note="pecapi imports aiohttp itself",
        ),
        Measure(
            bench="imports",
            what="import time, pecapi without bytecode (PYTHONDONTWRITEBYTECODE=1, no .pyc)",
            unit="ms",
            pecapi=source_ms,
            baseline=aiohttp_ms,
            baseline_name="import aiohttp (compiled)",
            note="a source checkout where bytecode is never written: pecapi compiled per start",
        ),
    ]
    counted: dict[str, int] = {}
    if config.icount:
        if shutil.which("valgrind") is None:
            skip("imports: instruction counts", "valgrind is not installed", log)
        else:
            counted = {name: _instructions(statement) for name, statement in STATEMENTS.items()}
            pecapi_i, aiohttp_i = (counted[n] - counted["bare"] for n in ("pecapi", "aiohttp"))
            log(f"  imports: aiohttp +{aiohttp_i / 1e6:.0f} M, pecapi +{pecapi_i / 1e6:.0f} M")
            measures.append(
                Measure(
                    bench="imports",
                    what="import instructions, compiled bytecode (valgrind, `pass` subtracted)",
                    unit="M instr",
                    pecapi=pecapi_i / 1e6,
                    baseline=aiohttp_i / 1e6,
                    baseline_name="import aiohttp",
                    target=1.3,
                )
            )
    return measures, {
        "wall_s": times,
        "interpreter_ms": bare * 1000,
        "instructions": counted,
        "top_imports_of_pecapi": top_imports("pecapi"),
        "pecapi_modules_at_import": _modules_at_import(),
    }


def _instructions(statement: str) -> int:
    """Instructions of ``python -c statement`` under valgrind (after one native run that
    leaves every ``.pyc`` current)."""
    from benchmarks.bench_icount import VALGRIND, instructions_of

    env = {**_env(), "PYTHONHASHSEED": "0"}
    _wall(statement)
    done = subprocess.run(
        [*VALGRIND, sys.executable, "-c", statement],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return instructions_of(done.stderr)


def _modules_at_import() -> dict[str, int]:
    """How many modules ``import aiohttp`` and ``import pecapi`` leave in sys.modules."""
    found: dict[str, int] = {}
    for name in ("aiohttp", "pecapi"):
        done = subprocess.run(
            [sys.executable, "-c", f"import sys, {name}; print(len(sys.modules))"],
            cwd=REPO_ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        found[name] = int(done.stdout.strip())
    return found
