"""How the emulator's servers answer a request under a fault of their plan: one switch for
the PEC API's server (:mod:`pecapi.testing.app`) and the token services'
(:mod:`pecapi.testing.oauth_http`), so that a fault reads the same on every server.

Faults before processing (``latency``, ``status``, ``drop_before``, ``answer``, ``late``)
never run the request; those after it (``drop_after``, ``slow_body``, ``truncated_body``,
``malformed_json``) run it, commit it, and then spoil its answer.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web

from .faults import Fault, FaultPlan
from .late import Incoming, LateCommits
from .ledger import RequestRecord
from .replies import JSON_HEADERS, Reply, envelope

__all__ = ["answer_with_faults"]


async def answer_with_faults(
    request: web.Request,
    incoming: Incoming,
    record: RequestRecord,
    *,
    faults: FaultPlan,
    late_commits: LateCommits,
    process: Callable[[Incoming], Reply],
    received: float,
) -> web.StreamResponse:
    """Process ``incoming`` (read in full, received at loop time ``received``) with
    ``process`` and answer it, under the fault ``faults`` picks for it, if any; ``record``
    (already in the server's request log) gets the fault's kind and the status sent."""
    fault = faults.pick(incoming.method, incoming.path)
    if fault is not None:
        record.fault = fault.kind
        if fault.kind == "latency":
            await asyncio.sleep(faults.latency_of(fault))
            fault = None
        elif fault.kind == "status":
            record.status = fault.code
            return _status_response(fault)
        elif fault.kind == "drop_before":
            return _drop(request)
        elif fault.kind == "answer":
            record.status = fault.code
            canned = {"Content-Type": fault.content_type} if fault.content_type else {}
            return web.Response(status=fault.code, body=fault.payload, headers=canned)
        elif fault.kind == "late":
            return await _late(request, incoming, record, fault, received, late_commits, process)

    reply = process(incoming)
    record.status = reply[0]
    if fault is None:
        status, body, headers = reply
        if status == 204:
            return web.Response(status=204)
        return web.Response(status=status, body=body, headers=headers)
    kind = fault.kind
    if kind == "drop_after":
        record.status = None
        return _drop(request)
    if kind == "slow_body":
        return await _slow(request, reply, fault)
    if kind == "truncated_body":
        return await _truncated(request, reply, fault)
    # malformed_json
    body = reply[1]
    broken = body[: len(body) // 2] if len(body) > 2 else b'{"data": '
    record.status = 200
    return web.Response(status=200, body=broken, headers=JSON_HEADERS)


async def _late(
    request: web.Request,
    incoming: Incoming,
    record: RequestRecord,
    fault: Fault,
    received: float,
    late_commits: LateCommits,
    process: Callable[[Incoming], Reply],
) -> web.StreamResponse:
    """Answer now without processing; process and commit ``fault.delay`` seconds after
    the request was received, whatever the client does meanwhile."""

    def commit() -> None:
        try:
            reply = process(incoming)
        except Exception:
            record.status = 500
            raise
        record.status = reply[0]

    task = late_commits.schedule(received + fault.delay, commit)
    if fault.reply == "504":
        record.status = 504
        return _status_response(_GATEWAY_TIMEOUT)
    if fault.reply == "hang":
        await asyncio.wait([task])  # (cancelling this handler does not cancel the task)
    return _drop(request)


def _status_response(fault: Fault) -> web.Response:
    code = fault.code
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Error"
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        if fault.retry_after == "http-date":
            headers["Retry-After"] = email.utils.formatdate(time.time() + 1, usegmt=True)
        else:
            headers["Retry-After"] = str(fault.retry_after)
    if fault.body == "json":
        message = "service temporarily unavailable" if code == 503 else phrase.lower()
        headers["Content-Type"] = "application/json"
        return web.Response(status=code, body=envelope(None, message, code), headers=headers)
    if fault.body == "html":
        title = f"{code} {phrase}"
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        headers["Content-Type"] = "text/html"
        return web.Response(status=code, body=page.encode(), headers=headers)
    return web.Response(status=code, headers=headers)


def _drop(request: web.Request) -> web.Response:
    """Close the connection now (no byte of an answer is sent). aiohttp then fails to write
    the returned response, and treats that as a premature client disconnection (no log)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


async def _slow(request: web.Request, reply: Reply, fault: Fault) -> web.StreamResponse:
    status, body, headers = reply
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = len(body)
    try:
        await resp.prepare(request)
        size = max(1, -(-len(body) // fault.chunks))
        for i, offset in enumerate(range(0, len(body), size)):
            if i:
                await asyncio.sleep(fault.delay)
            await resp.write(body[offset : offset + size])
        await resp.write_eof()
    except ConnectionError:
        pass
    return resp


async def _truncated(request: web.Request, reply: Reply, fault: Fault) -> web.StreamResponse:
    status, body, headers = reply
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_length = len(body)
    cut = min(int(len(body) * fault.fraction), max(len(body) - 1, 0))
    try:
        await resp.prepare(request)
        if cut:
            await resp.write(body[:cut])
    except ConnectionError:
        pass
    transport = request.transport
    if transport is not None:
        transport.close()  # flushes what was written, then closes: the body is cut short
    return resp


_GATEWAY_TIMEOUT = Fault.status(504, body="html")
