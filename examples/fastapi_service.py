"""A FastAPI service in front of the PEC API, sharing one PecClient over its lifespan.

    python -m pip install fastapi uvicorn   # not dependencies of pecapi
    export OPENAPI_SANDBOX_TOKEN=...        # production: OPENAPI_TOKEN and PECAPI_PRODUCTION=1
    python examples/fastapi_service.py      # PORT=8000 by default

    curl localhost:8000/mailboxes
    curl localhost:8000/availability/mario.rossi@testcert.legalmail.it
    curl -X POST localhost:8000/mailboxes/MAILBOX_ID/renewal

PECAPI_BASE_URL points the client at another server, e.g. ``pecapi emulator``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

import pecapi


def make_client() -> pecapi.PecClient:
    # The token comes from OPENAPI_SANDBOX_TOKEN (OPENAPI_TOKEN in production): PecClient
    # reads it itself, and a missing one fails here, at start-up, not on the first request.
    return pecapi.PecClient(
        sandbox=os.environ.get("PECAPI_PRODUCTION") != "1",
        base_url=os.environ.get("PECAPI_BASE_URL") or None,
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # One client for the whole process, made inside the running loop and closed when the
    # server shuts down. What the lifespan yields is each request's ``request.state``.
    async with make_client() as client:
        yield {"pec": client}


def pec(request: Request) -> pecapi.PecClient:
    client: pecapi.PecClient = request.state.pec
    return client


Pec = Annotated[pecapi.PecClient, Depends(pec)]
app = FastAPI(lifespan=lifespan)


def mailbox_json(box: pecapi.Mailbox | pecapi.MailboxSummary) -> dict[str, Any]:
    return {
        "id": box.id,
        "casella_pec": box.casella_pec,
        "stato": box.stato.value if box.stato else None,
        "data_scadenza": box.data_scadenza.isoformat() if box.data_scadenza else None,
    }


@app.get("/mailboxes")
async def list_mailboxes(client: Pec) -> list[dict[str, Any]]:
    return [mailbox_json(box) for box in await client.mailboxes.list()]


@app.get("/availability/{address}")
async def availability(address: str, client: Pec) -> dict[str, Any]:
    return {"casella_pec": address, "available": await client.mailboxes.is_available(address)}


@app.post("/mailboxes/{mailbox_id}/renewal")
async def renew(mailbox_id: str, client: Pec) -> dict[str, Any]:
    # A paid call. pecapi never sends it twice blindly, but a caller of this service that
    # retries its POST asks for a second renewal: give your own API an idempotency key if
    # its callers retry.
    return mailbox_json(await client.mailboxes.renew(mailbox_id))


@app.exception_handler(pecapi.PecError)
async def pec_errors(request: Request, exc: Exception) -> JSONResponse:
    """pecapi's errors as HTTP answers of this service (the order matters: subclasses first)."""
    if isinstance(exc, pecapi.ValidationError):  # bad input, caught before anything was sent
        return JSONResponse({"error": str(exc), "field": exc.field}, status_code=400)
    if isinstance(exc, pecapi.BadRequestError):  # e.g. a malformed id (400, code 201)
        return JSONResponse({"error": exc.api_message, "code": exc.code}, status_code=400)
    if isinstance(exc, pecapi.NotFoundError):  # a well-formed id that is not on the account
        return JSONResponse({"error": "no such mailbox"}, status_code=404)
    if isinstance(exc, pecapi.OutcomeUnknownError):
        # The write may or may not have happened: say so, so that nobody retries blindly.
        return JSONResponse({"error": "outcome unknown, check before retrying"}, status_code=504)
    return JSONResponse({"error": type(exc).__name__}, status_code=502)


if __name__ == "__main__":
    # uvicorn stops gracefully on SIGINT and SIGTERM: the lifespan then closes the client.
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
