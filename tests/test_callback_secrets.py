"""The callback signing key and the signatures it makes, kept out of reprs, errors (their
chains and traceback frames), pickles and logs: over real HTTP on loopback."""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import traceback
from collections.abc import Callable

import aiohttp
import pytest
from yarl import URL

from pecapi import (
    Callback,
    CallbackEvent,
    ConfigurationError,
    Mailbox,
    PecClient,
    PecError,
    RetryPolicy,
    ValidationError,
)
from pecapi.callbacks import CallbackSigner
from pecapi.models.converter import structure
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault
from tests.conftest import make_registration
from tests.leaks import secret_leaks
from tests.test_callback_security import ADDRESS, KEY, OTHER_KEY, mailbox, receiver

# -- the key stays secret --------------------------------------------------------------------


def pecapi_locals(exc: BaseException) -> str:
    """The reprs of the locals of pecapi's frames in ``exc``'s traceback, as error
    reporters record them."""
    summary = traceback.TracebackException.from_exception(exc, capture_locals=True)
    return repr(
        [frame.locals for frame in summary.stack if f"{os.sep}pecapi{os.sep}" in frame.filename]
    )


def test_the_key_is_not_in_reprs_errors_or_pickles() -> None:
    signer = CallbackSigner([KEY, OTHER_KEY])
    for text in (repr(signer), str(signer), repr(signer._ring), str(signer._ring)):
        assert KEY not in text
        assert OTHER_KEY not in text
    with pytest.raises(TypeError) as pickled:
        pickle.dumps(signer)
    assert KEY not in str(pickled.value)
    short = KEY[:10]
    for keys in (short, [KEY, short], [KEY, 3], [], object()):
        with pytest.raises(ConfigurationError) as caught:
            CallbackSigner(keys)  # type: ignore[arg-type]
        # the test's own frame holds the keys; pecapi's frames must not
        frames = pecapi_locals(caught.value)
        assert "CallbackSigner(keys=<no keys>" in frames  # __init__'s frame was looked at
        assert short not in frames, keys
        assert KEY not in frames, keys
        assert caught.value.__cause__ is None and caught.value.__context__ is None


async def test_the_key_is_not_logged_even_with_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    signer = CallbackSigner(KEY)

    async def on_event(event: CallbackEvent) -> None:
        raise RuntimeError("database down")

    statuses = []
    with caplog.at_level(logging.DEBUG):
        async with receiver(on_event, verify=signer) as url, aiohttp.ClientSession() as session:
            for target, body in (
                (signer.url(url, ADDRESS), mailbox()),  # on_event fails: a traceback
                (url, mailbox()),
                (signer.url(url, "x@testcert.legalmail.it"), mailbox()),
                (signer.url(url, ADDRESS), {"id": "1"}),
            ):
                async with session.post(target, json=body) as r:
                    statuses.append(r.status)
    assert statuses == [500, 403, 403, 400]
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1
    for record in caplog.records:
        assert KEY not in record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            rendered = "".join(
                traceback.TracebackException.from_exception(exc, capture_locals=True).format()
            )
            assert KEY not in rendered
            assert "database down" in rendered  # the traceback is the one expected
            # nor the signature: the body has no callback, so only a frame could show it
            assert signer.sign(ADDRESS) not in rendered
    assert KEY not in caplog.text


def test_the_signature_never_shows_in_a_repr() -> None:
    signer = CallbackSigner(KEY)
    callback = signer.callback("https://example.org/cb?x=1", ADDRESS)
    signature = signer.sign(ADDRESS)
    assert signature in callback.url  # the URL itself still carries it, to be sent
    box = Mailbox(id="6040e4613a716838dc4eee0e", casella_pec=ADDRESS, callback=callback)
    for text in (repr(callback), repr(box), str(box)):
        assert signature not in text
        assert "pecapi_sig=<redacted>" in text and "x=1" in text


async def test_a_custom_signature_parameter_never_shows_either() -> None:
    signer = CallbackSigner(KEY, param="x_sig")
    callback = signer.callback("https://example.org/cb?x=1", ADDRESS)
    signature = signer.sign(ADDRESS)
    assert f"x_sig={signature}" in callback.url  # sent as is
    registration = make_registration(ADDRESS, callback=callback)
    for text in (repr(callback), str(callback), repr(registration), str(registration)):
        assert signature not in text
        assert "x_sig=<redacted>" in text and "x=1" in text
    errors: list[PecError] = []
    emu = Emulator()
    async with (
        emu.serve() as server,
        PecClient(
            DEFAULT_TOKEN, sandbox=True, base_url=server.url, retry=RetryPolicy.never()
        ) as client,
    ):
        # Refused; outcome unknown; dropped before and after the request was read (the
        # request body, with the signed URL, must be in no frame of the traceback).
        faults = (Fault.status(400), Fault.status(500), Fault.drop_before(), Fault.drop_after())
        for fault in faults:
            emu.faults.once(fault, method="POST", path="/pec")
            with pytest.raises(PecError) as sent:
                await client.mailboxes.register(registration)
            errors.append(sent.value)
    async with PecClient(
        DEFAULT_TOKEN, sandbox=True, base_url=server.url, retry=RetryPolicy.never()
    ) as client:  # the emulator has stopped: connection refused
        with pytest.raises(PecError) as refused_connection:
            await client.mailboxes.register(registration)
        errors.append(refused_connection.value)
    # refused before sending: by the registration's own check, and by the callback's
    ftp = Callback(url="ftp" + callback.url.removeprefix("https"))
    makes: list[Callable[[], object]] = [
        lambda: make_registration("not an address", callback=callback),
        lambda: make_registration(ADDRESS, callback=ftp),
    ]
    for make in makes:
        with pytest.raises(ValidationError) as refused:
            make()
        errors.append(refused.value)
    assert "x_sig=<redacted>" in str(errors[-1])  # the URL is shown, its signature not
    for error in errors:
        assert secret_leaks(error, signature) == [], error


def test_a_signer_hides_its_parameter_in_callbacks_made_before_it_or_elsewhere() -> None:
    """The parameter is hidden from the moment a signer for it exists, whoever made the
    Callback: read back from the API, from a database, before the signer was."""
    name = "late_sig_" + secrets.token_hex(4)  # no signer in this process has used it yet
    token = "A" * 43
    early = Callback(url=f"https://example.org/cb?{name}={token}")
    assert token in repr(early)
    signer = CallbackSigner(KEY, param=name)
    read_back = structure(
        {"id": "m1", "casella_pec": ADDRESS, "callback": {"url": early.url}}, Mailbox
    )
    for text in (repr(early), repr(read_back)):
        assert token not in text and f"{name}=<redacted>" in text
    signer.param = "changed_" + name  # url() still registers what it signs with
    changed = signer.callback("https://example.org/cb", ADDRESS)
    assert signer.sign(ADDRESS) not in repr(changed)


def test_a_signature_in_a_url_object_never_shows_either() -> None:
    signer = CallbackSigner(KEY)
    signature = signer.sign(ADDRESS)
    url = URL(signer.url("https://example.org/cb", ADDRESS))
    with pytest.raises(ValidationError) as refused:
        Callback(url=url.with_scheme("ftp")).check()  # type: ignore[arg-type]
    for text in (repr(Callback(url=url)), str(refused.value)):  # type: ignore[arg-type]
        assert signature not in text and "pecapi_sig=<redacted>" in text
