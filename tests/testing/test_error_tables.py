"""The error-code tables: documented codes match the specification, invented ones are listed."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from pecapi.testing import DOCUMENTED_CODES, INVENTED_CODES
from tests.conftest import SPEC_PATH

README = Path(__file__).resolve().parents[2] / "pecapi" / "testing" / "README.md"


def test_codes_are_unique_per_endpoint():
    seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for entry in (*DOCUMENTED_CODES, *INVENTED_CODES):
        if entry.endpoint != "*":
            seen[(entry.endpoint, entry.code)].add(entry.message)
    assert all(len(messages) == 1 for messages in seen.values()), seen


def test_readme_lists_every_invented_code():
    if not README.exists():
        pytest.skip("pecapi/testing/README.md was folded into the main README")
    text = README.read_text()
    for entry in INVENTED_CODES:
        assert f"| {entry.status} | {entry.code} | " in text, entry


def test_documented_codes_match_the_specification():
    # The copy of the specification the repository ships (tests/data), so that this runs
    # everywhere, CI included.
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    examples = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                example = response.get("content", {}).get("application/json", {}).get("example")
                if example and example.get("success") is False:
                    message = example["message"].replace("$dominio", "{dominio}")
                    examples.add(
                        (f"{method.upper()} {path}", int(status), example["error"], message)
                    )
    ours = set()
    for e in DOCUMENTED_CODES:
        message = e.message.replace("{amount}", "182.03").replace("{unit}", "1024")
        message = message.replace("{allowed}", "SILVER or GOLD")
        ours.add((e.endpoint, e.status, e.code, message))
    # every documented entry of ours is an example of the specification...
    assert ours <= examples, ours - examples
    # ...and every example of the specification is implemented, bar the 503 of /domini_pec
    # (a fault-plan matter: Fault.status(503)).
    missing = {x for x in examples - ours if x[1] != 503}
    assert missing == set(), missing
