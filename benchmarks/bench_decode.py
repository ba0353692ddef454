"""Benchmark 6: decoding a large ``GET /pec`` answer into models.

The body is the emulator's own answer for an account of N mailboxes (its wire dicts in
the ``{data, success, message, error}`` envelope). pecapi's path is the real one:
``json.loads`` of the body, then ``pecapi.resources.mailboxes.LIST.decode`` of a
``Reply`` (``structure`` of every item into ``MailboxSummary``), as
``client.mailboxes.list()`` does; the baseline is ``json.loads`` alone. In-process,
CPU-bound, best-of-nothing: the median of the repetitions, garbage collector on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import attrs

from benchmarks.common import Measure, median

__all__ = ["DecodeConfig", "list_body", "run"]


@attrs.frozen
class DecodeConfig:
    items: int = 10_000
    repeats: int = 9


def list_body(items: int) -> bytes:
    """The emulator's ``GET /pec`` answer for an account of ``items`` mailboxes."""
    from pecapi.testing import Emulator
    from pecapi.testing.app import envelope

    emu = Emulator()
    states = ("evasa", "registrata", "in_evasione", "revocata")
    for i in range(items):
        emu.seed_mailbox(f"list.{i}@testcert.legalmail.it", stato=states[i % len(states)])
    return envelope(emu.resources.mailboxes.list())


def run(config: DecodeConfig, log: Callable[[str], None]) -> tuple[list[Measure], Any]:
    from pecapi.models.mailbox import MailboxSummary
    from pecapi.resources.mailboxes import LIST
    from pecapi.transport.endpoint import Reply

    body = list_body(config.items)

    def decode() -> list[Any]:
        payload = json.loads(body)
        reply = Reply(status=200, data=payload["data"], message=None, code=None, params={})
        result: list[Any] = LIST.decode(reply)
        return result

    boxes = decode()
    assert len(boxes) == config.items and isinstance(boxes[0], MailboxSummary)
    loads: list[float] = []
    full: list[float] = []
    for _ in range(config.repeats):
        started = time.perf_counter()
        json.loads(body)
        loads.append(time.perf_counter() - started)
        started = time.perf_counter()
        decode()
        full.append(time.perf_counter() - started)
    loads_ms, full_ms = median(loads) * 1000, median(full) * 1000
    log(
        f"  decode {config.items} mailboxes ({len(body) / 2**20:.1f} MB): "
        f"json.loads {loads_ms:.1f} ms, + models {full_ms:.1f} ms "
        f"({(full_ms - loads_ms) / config.items * 1000:.1f} us per item)"
    )
    measures = [
        Measure(
            bench="decode",
            what=f"GET /pec with {config.items} mailboxes -> list[MailboxSummary]",
            unit="ms",
            pecapi=full_ms,
            baseline=loads_ms,
            baseline_name="json.loads alone",
            note=f"{(full_ms - loads_ms) / config.items * 1000:.1f} us per item on top",
        )
    ]
    return measures, {"loads_s": loads, "decode_s": full, "body_bytes": len(body)}
