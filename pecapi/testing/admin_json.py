"""The JSON of the admin surface (:mod:`pecapi.testing.admin`): reading request bodies with
errors that name the bad field, and writing faults, rules, charges and requests.

Bodies are parsed with JSON numbers as :class:`~decimal.Decimal`, so money stays exact
(``10.10`` is ten euros ten, not a binary fraction); other numbers are converted here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn, cast

from .faults import LATE_REPLIES, BodyKind, Fault, FaultPlan, FaultRule, LateReply
from .ledger import Charge, RequestRecord

__all__ = [
    "ADMIN_PREFIX",
    "AdminError",
    "Fields",
    "add_rule",
    "charge_json",
    "dumps",
    "fault_from_json",
    "fault_json",
    "is_admin_path",
    "parse_body",
    "request_json",
    "rule_json",
]


#: The admin surface's paths start with this: no path of the PEC API does (theirs start
#: with pec, verifica_pec, domini_pec or comunica_pec).
ADMIN_PREFIX = "/_emulator"


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


class AdminError(Exception):
    """An admin answer other than success: ``status``, a short ``error`` code, a message,
    and the ``field`` of the request at fault (a body key, a query parameter), if any."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        field: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.field = field
        self.headers: Mapping[str, str] = headers or {}

    def json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"error": self.error, "message": self.message}
        if self.field is not None:
            answer["field"] = self.field
        return answer


def bad(field: str, what: str) -> NoReturn:
    """A 400 naming ``field``: ``"<field>: <what>"``."""
    raise AdminError(400, "bad_request", f"{field}: {what}", field)


def _default(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_default, ensure_ascii=False).encode()


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON object (an empty body is ``{}``); a 400 for anything else."""
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise AdminError(400, "bad_request", "the body is not valid JSON", "body") from None
    if not isinstance(parsed, dict):
        raise AdminError(400, "bad_request", "the body must be a JSON object", "body")
    return parsed


_MONEY_LIMIT = Decimal(10) ** 12


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


class Fields:
    """Typed reads of a JSON object's keys; ``done()`` refuses keys nobody read (a misspelt
    ``"nht": 3`` must not silently become a fault of the next request)."""

    def __init__(self, data: Mapping[str, Any], prefix: str = "") -> None:
        self._data = data
        self._prefix = prefix
        self._read: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def has(self, key: str) -> bool:
        return key in self._data

    def raw(self, key: str) -> Any:
        self._read.add(key)
        return self._data.get(key)

    def integer(
        self, key: str, default: int | None = None, *, low: int = 0, high: int | None = None
    ) -> int | None:
        value = self.raw(key)
        if value is None:
            return default
        # bool is an int in Python, and JSON's true is not a count
        if isinstance(value, bool) or not isinstance(value, int):
            bad(self.name(key), "a whole number is required")
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f">= {low}"
            bad(self.name(key), f"must be {bound}, not {value}")
        return value

    def number(
        self, key: str, default: float | None = None, *, low: float = 0.0, high: float | None = None
    ) -> float | None:
        value = self.raw(key)
        if value is None:
            return default
        return self.as_number(value, self.name(key), low=low, high=high)

    @staticmethod
    def as_number(value: Any, field: str, *, low: float = 0.0, high: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            bad(field, "a number is required")
        number = float(value)
        if not low <= number or (high is not None and number > high):
            bound = f"from {low:g} to {high:g}" if high is not None else f">= {low:g}"
            bad(field, f"must be {bound}, not {value}")
        return number

    def text(
        self, key: str, default: str | None = None, *, choices: tuple[str, ...] = ()
    ) -> str | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            bad(self.name(key), "a non-empty string is required")
        if choices and value not in choices:
            bad(self.name(key), f"one of {', '.join(choices)}, not {value!r}")
        return value

    def money(self, key: str) -> Decimal | None:
        """EUR as a JSON number or a string (``"12.50"``), cents at most."""
        value = self.raw(key)
        if value is None:
            return None
        field = self.name(key)
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            bad(field, 'an amount in EUR is required, e.g. "12.50"')
        try:
            amount = Decimal(value)
        except InvalidOperation:
            bad(field, f'an amount in EUR is required, e.g. "12.50", not {value!r}')
        exponent = amount.normalize().as_tuple().exponent if amount.is_finite() else "n"
        if not isinstance(exponent, int) or exponent < -2 or abs(amount) >= _MONEY_LIMIT:
            bad(field, f"an amount in EUR with at most 2 decimals is required, not {value}")
        return amount

    def done(self) -> None:
        unknown = sorted(set(self._data) - self._read)
        if unknown:
            bad(self.name(unknown[0]), "unknown field")


# --- faults --------------------------------------------------------------------------------

#: The parameters of each kind of fault in JSON (besides "kind").
FAULT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "latency": ("seconds",),
    "status": ("status", "body", "retry_after"),
    "drop_before": (),
    "drop_after": (),
    "slow_body": ("delay", "chunks"),
    "truncated_body": ("fraction",),
    "malformed_json": (),
    "answer": ("status", "body", "content_type"),
    "late": ("after", "reply"),
}


def fault_from_json(value: Any, field: str) -> Fault:
    """The :class:`Fault` a JSON object describes (see the README); a 400 naming the field."""
    if not isinstance(value, dict):
        bad(field, 'a fault object is required, e.g. {"kind": "status", "status": 503}')
    f = Fields(value, f"{field}.")
    kind = f.text("kind", choices=tuple(FAULT_FIELDS))
    if kind is None:
        bad(f.name("kind"), f"required: one of {', '.join(FAULT_FIELDS)}")
    fault = _build(kind, f)
    f.done()
    return fault


def _build(kind: str, f: Fields) -> Fault:
    if kind == "latency":
        seconds = f.raw("seconds")
        if isinstance(seconds, list):
            if len(seconds) != 2:
                bad(f.name("seconds"), "a number, or [low, high]")
            lo = Fields.as_number(seconds[0], f.name("seconds[0]"))
            hi = Fields.as_number(seconds[1], f.name("seconds[1]"), low=lo)
            return Fault.latency((lo, hi))
        if seconds is None:
            bad(f.name("seconds"), "required: a number, or [low, high]")
        return Fault.latency(Fields.as_number(seconds, f.name("seconds")))
    if kind in ("status", "answer"):
        code = f.integer("status", low=100, high=599)
        if code is None:
            bad(f.name("status"), "required: an HTTP status from 100 to 599")
        if kind == "answer":
            return Fault.answer(code, _answer_body(f), f.text("content_type") or "application/json")
        body = f.text("body", "json", choices=("json", "html", "empty"))
        retry_after = f.raw("retry_after")
        if retry_after is not None and (
            isinstance(retry_after, bool) or not isinstance(retry_after, int | str)
        ):
            bad(f.name("retry_after"), 'whole seconds, "http-date" or a string sent verbatim')
        return Fault.status(code, body=cast(BodyKind, body), retry_after=retry_after)
    if kind == "slow_body":
        delay = f.number("delay", high=60.0)
        if delay is None:
            bad(f.name("delay"), "required: seconds between the parts of the body")
        return Fault.slow_body(delay, f.integer("chunks", 4, low=1, high=1000) or 4)
    if kind == "truncated_body":
        fraction = f.number("fraction", 0.5, high=0.99)
        return Fault.truncated_body(0.5 if fraction is None else fraction)
    if kind == "late":
        after = f.number("after", high=3600.0)
        if after is None:
            bad(f.name("after"), "required: seconds until the request is committed")
        reply = f.text("reply", "504", choices=LATE_REPLIES)
        return Fault.late(after, cast(LateReply, reply))
    return {
        "drop_before": Fault.drop_before,
        "drop_after": Fault.drop_after,
        "malformed_json": Fault.malformed_json,
    }[kind]()


def _answer_body(f: Fields) -> bytes:
    # a string is sent as it is; any other JSON value encoded (null: an empty body)
    body = f.raw("body")
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    return dumps(body)


def fault_json(fault: Fault) -> dict[str, Any]:
    """A fault as the JSON :func:`fault_from_json` reads."""
    answer: dict[str, Any] = {"kind": fault.kind}
    if fault.kind == "latency":
        answer["seconds"] = (
            fault.delay if fault.delay_max is None else [fault.delay, fault.delay_max]
        )
    elif fault.kind == "status":
        answer.update(status=fault.code, body=fault.body)
        if fault.retry_after is not None:
            answer["retry_after"] = fault.retry_after
    elif fault.kind == "answer":
        answer.update(
            status=fault.code,
            body=fault.payload.decode("utf-8", "replace"),
            content_type=fault.content_type,
        )
    elif fault.kind == "slow_body":
        answer.update(delay=fault.delay, chunks=fault.chunks)
    elif fault.kind == "truncated_body":
        answer["fraction"] = fault.fraction
    elif fault.kind == "late":
        answer.update(after=fault.delay, reply=fault.reply)
    return answer


def rule_json(rule: FaultRule) -> dict[str, Any]:
    """A rule as it stands now; posted back, it would make the same rule."""
    answer: dict[str, Any] = {
        "id": rule.id,
        "faults": [fault_json(fault) for fault in rule.faults],
        "method": rule.method,
        "path": rule.path,
    }
    if rule.rng is not None:
        answer.update(rate=rule.probability, seed=rule.seed)
    else:
        answer.update(nth=rule.skip + 1, times=rule.remaining)
    return answer


def add_rule(plan: FaultPlan, body: Fields, done: Callable[[], None]) -> FaultRule:
    """The rule a POST /_emulator/faults body describes, added to ``plan``; ``done`` is
    called once everything is read and valid, before the rule is added."""
    if body.has("fault") == body.has("faults"):
        bad("fault", 'give one of "fault" (an object) or "faults" (a list, with "rate")')
    method = body.text("method")
    if method is not None and method != "*" and not method.isalpha():
        bad("method", f'an HTTP method or "*", not {method!r}')
    path = body.text("path")
    if path is not None:
        if not path.startswith(("/", "*")):
            bad("path", f'a glob on the request path, starting with "/" or "*", not {path!r}')
        if is_admin_path(path):
            bad("path", f"admin requests ({ADMIN_PREFIX}/...) are never faulted")
    rate = body.number("rate", high=1.0)
    seed = body.integer("seed", low=-(2**63), high=2**63)
    nth = body.integer("nth", low=1)
    times = body.integer("times", low=1)
    if rate is None:
        for key, value in (("seed", seed), ("faults", body.raw("faults"))):
            if value is not None:
                bad(key, 'only a rate rule has it: give "rate" too, or leave it out')
        fault = fault_from_json(body.raw("fault"), "fault")
        done()
        return plan.nth(nth or 1, fault, times=times or 1, method=method, path=path)
    for key, value in (("nth", nth), ("times", times)):
        if value is not None:
            bad(key, 'a rate rule faults each matching request with "rate": no nth or times')
    if body.has("faults"):
        given = body.raw("faults")
        if not isinstance(given, list) or not given:
            bad("faults", "a non-empty list of fault objects is required")
        faults = [fault_from_json(item, f"faults[{i}]") for i, item in enumerate(given)]
    else:
        faults = [fault_from_json(body.raw("fault"), "fault")]
    done()
    return plan.rate(rate, faults, method=method, path=path, seed=seed)


def charge_json(charge: Charge) -> dict[str, Any]:
    return {
        "operation": charge.operation,
        "amount": charge.amount,
        "target_id": charge.target_id,
        "detail": charge.detail,
        "at": charge.at,
    }


def request_json(record: RequestRecord) -> dict[str, Any]:
    return {
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "fault": record.fault,
    }
