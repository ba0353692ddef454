"""No import cycle anywhere in pecapi: no module imports, directly or through others, a
module that imports it back (the package's ``__init__`` included).

A cycle makes a module's import depend on which of the two was imported first (a name
missing from a half-initialised module), and ties modules that cannot be understood, or
changed, one without the other.

The check is run twice: here by pytest, and by ``lint-imports`` in ``.ci/run``, whose
contract (``[tool.importlinter]`` in pyproject.toml) is :class:`AcyclicModulesContract`.
It counts every import that runs, those inside functions included (a lazy import that
closes a cycle hides it, it does not remove it), and leaves out the imports under
``if TYPE_CHECKING:``: they never run (every module has ``from __future__ import
annotations``), so they cannot make an import depend on another's order; they are how a
module names a type without depending on its module at run time (``errors.py`` names the
``PendingOutcome`` that ``OutcomeUnknownError`` carries).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import grimp
import pytest
from importlinter import Contract, ContractCheck, output


def import_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Each cycle among the modules of ``package``: one shortest round trip per group of
    modules that import each other (a strongly connected component), as the list of the
    modules it goes through, back to the first; sorted, so a report is stable."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    seen: set[str] = set()
    cycles: list[list[str]] = []
    for module in modules:
        if module in seen:
            continue
        # What ``module`` imports (transitively) and what imports it: both at once is a
        # cycle through it.
        upstream = graph.find_upstream_modules(module)
        downstream = graph.find_downstream_modules(module)
        component = sorted(upstream & downstream)
        seen.update(component)
        if not component:
            continue
        there = graph.find_shortest_chain(importer=module, imported=component[0])
        back = graph.find_shortest_chain(importer=component[0], imported=module)
        assert there is not None and back is not None
        cycles.append([*there, *back[1:]])
    return cycles


def build_graph(package: str) -> grimp.ImportGraph:
    return grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)


class AcyclicModulesContract(Contract):
    """An import-linter contract: no module of the root packages is in an import cycle
    (the root package's ``__init__`` included, which ``acyclic_siblings`` leaves out).
    Set ``exclude_type_checking_imports`` in the ``[tool.importlinter]`` section."""

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roots = sorted(self.session_options["root_packages"])
        cycles = [cycle for root in roots for cycle in import_cycles(graph, root)]
        return ContractCheck(kept=not cycles, metadata={"cycles": cycles})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(" -> ".join(cycle), bold=False)
            output.new_line()


def test_no_module_of_pecapi_is_in_an_import_cycle() -> None:
    cycles = import_cycles(build_graph("pecapi"), "pecapi")
    assert cycles == [], "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_check_finds_cycles_and_leaves_type_checking_imports_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package made for the test: the checker can fail, on the cycles it should."""
    files = {
        # a cycle through the package's own __init__ (as pecapi's __version__ was)
        "__init__.py": "from cyclic.core import run\n__version__ = '1'\n",
        "core.py": "from cyclic import __version__\n\ndef run(): ...\n",
        # a cycle closed by an import inside a function
        "a.py": "from cyclic import b\n",
        "b.py": "def later():\n    from cyclic import a\n",
        # no cycle: the import back is for type checkers only
        "models.py": "from cyclic import types_only\n",
        "types_only.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cyclic import models\n"
        ),
    }
    package = tmp_path / "cyclic"
    package.mkdir()
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))

    cycles = import_cycles(build_graph("cyclic"), "cyclic")

    assert sorted(cycles) == [
        ["cyclic", "cyclic.core", "cyclic"],
        ["cyclic.a", "cyclic.b", "cyclic.a"],
    ]
