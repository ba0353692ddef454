"""Signed callback URLs: a practical check that a callback delivery came from a caller who
knew the URL you registered.

The API's specification offers no signature of its callbacks. :class:`CallbackSigner`
puts an HMAC-SHA256 of the mailbox's address (``casella_pec``), keyed with a secret of
yours, in the callback URL's query (``?pecapi_sig=...``); :func:`pecapi.callbacks.handler`
with ``verify=signer`` recomputes it from the address in the delivered object and answers
403, without calling your function, when it is missing or does not match::

    signer = CallbackSigner(os.environ["PEC_CALLBACK_KEY"])
    registration = MailboxRegistration(
        casella_pec=address, ..., callback=signer.callback("https://me.example/pec", address)
    )
    app.router.add_post("/pec", handler(on_event, verify=signer))

What it proves, and what not, is in the README ("Signed callback URLs").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from yarl import URL

from pecapi.errors import ConfigurationError
from pecapi.models.common import Callback, redact_query_param
from pecapi.models.enums import CallbackMethod, CallbackMethodLiteral

__all__ = ["DEFAULT_PARAM", "MIN_KEY_BYTES", "CallbackSigner"]

DEFAULT_PARAM = "pecapi_sig"
#: a shorter key could be guessed offline from one leaked URL and its address
MIN_KEY_BYTES = 16
# Domain separation: the same key used elsewhere by the user never yields these MACs.
_CONTEXT = b"pecapi callback url v1\x00"
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_TOKEN_LENGTH = 43  # 32 bytes of SHA-256, base64url without padding


def _normalise(address: str) -> bytes:
    # The address echoed in a callback may differ in case from the one signed (the emulator
    # stores it lowercased); PEC addresses are not told apart by case.
    return address.strip().lower().encode("utf-8", "surrogatepass")


class _KeyRing:
    """The keyed HMAC states, never the keys: nothing here prints or pickles a key."""

    __slots__ = ("_macs",)

    def __init__(self, macs: tuple[Any, ...]) -> None:
        self._macs = macs

    def __len__(self) -> int:
        return len(self._macs)

    def token(self, address: str, index: int = 0) -> str:
        mac = self._macs[index].copy()
        mac.update(_normalise(address))
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")

    def matches(self, token: str, address: str) -> bool:
        given = token.encode("utf-8", "replace")
        found = False
        # Every key is tried, so the time taken does not tell which one matched.
        for index in range(len(self._macs)):
            found |= hmac.compare_digest(given, self.token(address, index).encode("ascii"))
        return found

    def __repr__(self) -> str:
        return f"<{len(self._macs)} redacted key(s)>"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("callback keys are not picklable")


def _key_ring(keys: object) -> tuple[_KeyRing | None, str]:
    """The ring for ``keys``, or None and why not. Never raises: a traceback from here
    would hold the keys in its frames' locals."""
    items: list[object]
    if isinstance(keys, (str, bytes, bytearray)):
        items = [keys]
    elif isinstance(keys, Iterable):
        try:
            items = list(keys)
        except Exception:  # a generator of the caller's that failed: say so, keep no frame
            return None, "the keys could not be read"
    else:
        return None, "keys must be a str or bytes key, or a sequence of them"
    if not items:
        return None, "at least one key is needed"
    macs = []
    for position, item in enumerate(items):
        if isinstance(item, str):
            item = item.encode("utf-8", "surrogatepass")
        if not isinstance(item, (bytes, bytearray)):
            return None, f"key #{position} is not a str or bytes"
        if len(item) < MIN_KEY_BYTES:
            return None, f"key #{position} is shorter than {MIN_KEY_BYTES} bytes"
        macs.append(hmac.new(bytes(item), _CONTEXT, hashlib.sha256))
    return _KeyRing(tuple(macs)), ""


class CallbackSigner:
    """Signs callback URLs for a mailbox address, and checks deliveries to them.

    ``keys`` is one secret (str or bytes, at least 16 bytes; 32 random bytes, e.g.
    ``secrets.token_urlsafe(32)``, is right) or a sequence of them: the first signs, any
    verifies, so that a key can be rotated (see the README). ``param`` is the query
    parameter carrying the signature. The keys never appear in a repr, a str, an
    exception or a log record.
    """

    __slots__ = ("_ring", "param")

    def __init__(
        self, keys: str | bytes | Sequence[str | bytes], *, param: str = DEFAULT_PARAM
    ) -> None:
        ring, problem = _key_ring(keys)
        del keys  # not in this frame's locals when the error below is raised
        if ring is None:
            raise ConfigurationError(f"CallbackSigner: {problem}")
        if not isinstance(param, str) or not param:
            raise ConfigurationError("CallbackSigner: param must be a non-empty string")
        self._ring = ring
        self.param = param
        # Here, not only in url(): a signed URL may become a Callback elsewhere (read back
        # from the API, from a database), and its repr hides the signature once a signer
        # for its parameter exists in the process, as every verifying receiver has one.
        redact_query_param(param)

    def __repr__(self) -> str:
        # getattr: a traceback of a failed __init__ shows this repr of a half-made signer
        ring, param = getattr(self, "_ring", "<no keys>"), getattr(self, "param", None)
        return f"CallbackSigner(keys={ring!s}, param={param!r})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("callback signers are not picklable")

    # -- signing -------------------------------------------------------------------------

    def sign(self, address: str) -> str:
        """The signature of ``address`` with the first key (what :meth:`url` adds)."""
        if not isinstance(address, str) or not address.strip():
            raise ValueError("address must be a non-empty string")
        return self._ring.token(address)

    def url(self, url: str | URL, address: str) -> str:
        """``url`` with the signature of ``address`` added to its query (other parameters
        are kept; an older signature is replaced)."""
        base = url if isinstance(url, URL) else URL(url)
        if base.scheme not in ("http", "https") or not base.host:
            raise ValueError("url must be an absolute http(s) URL")
        redact_query_param(self.param)  # again: ``param`` may have been set since __init__
        return str(base.update_query({self.param: self.sign(address)}))

    def callback(
        self,
        url: str | URL,
        address: str,
        *,
        method: CallbackMethod | CallbackMethodLiteral | None = None,
        field: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Callback:
        """A :class:`~pecapi.Callback` whose URL is signed for ``address``: pass the
        registration's or comunica_pec request's ``casella_pec``."""
        return Callback(url=self.url(url, address), method=method, field=field, data=data)

    # -- verifying -----------------------------------------------------------------------

    def token_in(self, query: Mapping[str, str]) -> str | None:
        """The signature in a request's query if it has exactly one of the right shape."""
        getall = getattr(query, "getall", None)  # aiohttp's query is a multidict
        if callable(getall):
            values = list(getall(self.param, ()))
        else:
            values = [query[self.param]] if self.param in query else []
        if len(values) != 1:  # two signatures: which one would the sender have meant?
            return None
        token = values[0]
        if not isinstance(token, str) or len(token) != _TOKEN_LENGTH:
            return None
        return token if _TOKEN_CHARS.issuperset(token) else None

    def verify(self, token: str | None, address: str | None) -> bool:
        """Whether ``token`` is the signature of ``address`` under any key (compared in
        constant time). False when either is missing."""
        if not isinstance(token, str) or not isinstance(address, str) or not address.strip():
            return False
        return self._ring.matches(token, address)
