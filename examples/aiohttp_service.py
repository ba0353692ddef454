"""An aiohttp web service in front of the PEC API, sharing one PecClient.

    export OPENAPI_SANDBOX_TOKEN=...        # production: OPENAPI_TOKEN and PECAPI_PRODUCTION=1
    python examples/aiohttp_service.py      # PORT=8080 by default

    curl localhost:8080/mailboxes
    curl localhost:8080/availability/mario.rossi@testcert.legalmail.it
    curl -X POST localhost:8080/mailboxes/MAILBOX_ID/renewal

PECAPI_BASE_URL points the client at another server, e.g. ``pecapi emulator``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

import pecapi

CLIENT = web.AppKey("client", pecapi.PecClient)


def make_client() -> pecapi.PecClient:
    # The token comes from OPENAPI_SANDBOX_TOKEN (OPENAPI_TOKEN in production): PecClient
    # reads it itself, and a missing one fails here, at start-up, not on the first request.
    return pecapi.PecClient(
        sandbox=os.environ.get("PECAPI_PRODUCTION") != "1",
        base_url=os.environ.get("PECAPI_BASE_URL") or None,
    )


async def pec_client(app: web.Application) -> AsyncIterator[None]:
    # One client for the whole process, made inside the running loop and closed at
    # shutdown (after the server stopped taking requests). Sharing it shares the
    # connection pool, the rate limits, and the per-mailbox locks that keep two paid
    # writes on one mailbox from racing each other.
    async with make_client() as client:
        app[CLIENT] = client
        yield


def mailbox_json(box: pecapi.Mailbox | pecapi.MailboxSummary) -> dict[str, Any]:
    return {
        "id": box.id,
        "casella_pec": box.casella_pec,
        "stato": box.stato.value if box.stato else None,
        "data_scadenza": box.data_scadenza.isoformat() if box.data_scadenza else None,
    }


routes = web.RouteTableDef()


@routes.get("/mailboxes")
async def list_mailboxes(request: web.Request) -> web.Response:
    boxes = await request.app[CLIENT].mailboxes.list()
    return web.json_response([mailbox_json(box) for box in boxes])


@routes.get("/availability/{address}")
async def availability(request: web.Request) -> web.Response:
    address = request.match_info["address"]
    available = await request.app[CLIENT].mailboxes.is_available(address)
    return web.json_response({"casella_pec": address, "available": available})


@routes.post("/mailboxes/{id}/renewal")
async def renew(request: web.Request) -> web.Response:
    # A paid call. pecapi never sends it twice blindly, but a caller of this service that
    # retries its POST asks for a second renewal: give your own API an idempotency key if
    # its callers retry.
    box = await request.app[CLIENT].mailboxes.renew(request.match_info["id"])
    return web.json_response(mailbox_json(box))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def pec_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """pecapi's errors as HTTP answers of this service (the order matters: subclasses first)."""
    try:
        return await handler(request)
    except pecapi.ValidationError as exc:  # bad input, caught before anything was sent
        return web.json_response({"error": str(exc), "field": exc.field}, status=400)
    except pecapi.BadRequestError as exc:  # e.g. a malformed id (400, code 201)
        return web.json_response({"error": exc.api_message, "code": exc.code}, status=400)
    except pecapi.NotFoundError:  # a well-formed id that is not on the account
        return web.json_response({"error": "no such mailbox"}, status=404)
    except pecapi.OutcomeUnknownError:
        # The write may or may not have happened: say so, so that nobody retries blindly.
        return web.json_response({"error": "outcome unknown, check before retrying"}, status=504)
    except pecapi.PecError as exc:  # the API refused, or could not be reached
        return web.json_response({"error": type(exc).__name__}, status=502)


def create_app() -> web.Application:
    app = web.Application(middlewares=[pec_errors])
    app.cleanup_ctx.append(pec_client)
    app.add_routes(routes)
    return app


if __name__ == "__main__":
    # run_app stops gracefully on SIGINT and SIGTERM: cleanup_ctx then closes the client.
    web.run_app(create_app(), host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
