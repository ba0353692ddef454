"""A failed call's error is freed as soon as the caller drops it, without waiting for a
garbage collection: no frame of the retry loop keeps the error it raised in a local
(the error's traceback holds those frames, with the request's body and credentials)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pecapi import NotAcceptableError, PecClient, PecError, RetryPolicy
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, samples

QUICK = RetryPolicy(settle=0.2, max_attempts=1, backoff=0.01, backoff_max=0.02)


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_a_refused_write_leaves_no_cycle(no_gc: None) -> None:
    emulator = Emulator()
    emulator.seed_mailbox("taken@testcert.legalmail.it", stato="evasa")
    async with (
        emulator.serve() as pec,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec.url, retry=QUICK) as client,
    ):
        ref = None
        try:
            await client.mailboxes.register(samples.registration("taken@testcert.legalmail.it"))
        except NotAcceptableError as exc:  # the address is taken: refused, final
            ref = weakref.ref(exc)
        assert ref is not None
        assert ref() is None


async def test_a_write_settled_not_applied_leaves_no_cycle(no_gc: None) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.status(502, body="html"), path="/pec/*/rinnovo")  # unprocessed
    async with (
        emulator.serve() as pec,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec.url, retry=QUICK) as client,
    ):
        ref = None
        try:
            await client.mailboxes.renew(box_id)
        except PecError as exc:  # settled "not applied", and no attempt left to resend
            ref = weakref.ref(exc)
        assert ref is not None
        assert ref() is None
    assert emulator.charges(operation="renewal") == []
