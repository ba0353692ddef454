"""Writing a model's decoder: the Python source of one function, compiled once.

The function (see :mod:`pecapi.models.decoders` for what it must do):

- reads each field with one ``data.get`` (bound once), then by its inlined reader
  (:func:`pecapi.models.decoders.field_code`);
- stores the values into an instance of an unfrozen subclass of the model with the same
  slots, then makes it an instance of the model (``__class__`` assignment): the
  interpreter's own slot store, about a twentieth of the cost of calling each slot's
  ``__set__`` (what attrs' frozen ``__init__`` does, by name);
- runs the fields' attrs validators and ``__attrs_post_init__``, as ``__init__`` would
  (a model whose ``__init__`` does more, a converter or a hash cache, is refused);
- on any exception, returns the reference path's reading of the whole answer.
"""

from __future__ import annotations

import itertools
import linecache
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from pecapi.models import readers
from pecapi.readonly import ReadOnlyDict

if TYPE_CHECKING:
    from pecapi.models.decoders import ModelPlan

__all__ = ["FieldCode", "write_decoder"]


@attrs.frozen
class FieldCode:
    """How one field is read: ``reader``, the full reader (the reference path), and
    ``source``, the inlined one (``{v}`` the value, ``{i}`` the field's index), with the
    ``names`` it uses."""

    reader: Callable[[Any], Any]
    source: str
    names: dict[str, Any]


_GLOBALS: dict[str, Any] = {
    "_MISSING": readers.MISSING,
    "_dates": readers.DATE_CACHE.get,  # the cache is emptied when full, never replaced
    "_read_str": readers.read_str,
    "_read_int": readers.read_int,
    "_read_bool": readers.read_bool,
    "_read_date": readers.read_date,
    "_read_enum": readers.read_enum,
    "_read_callback": readers.read_callback,
    "_read_mapping": readers.read_mapping,
    "_read_str_tuple": readers.read_str_tuple,
    "_new": object.__new__,
    "_proxy": ReadOnlyDict.adopt,
    "_validators_disabled": attrs.validators.get_disabled,
}
_serial = itertools.count()


def write_decoder(plan: ModelPlan, *, swap: bool = True) -> Callable[[Any], Any]:
    """Generate, compile and return the decoder of ``plan.cls``.

    ``swap``: build through the unfrozen subclass (when ``__class__`` assignment accepts
    it); else store each field with its slot's ``__set__``.
    """
    cls = plan.cls
    _check_supported(cls)
    building = readers.unfrozen(cls) if swap else None
    names: dict[str, Any] = dict(
        _GLOBALS,
        _cls=cls,
        _building=building or cls,
        _known=plan.known,
        _empty=plan.empty_extra,
        _slow=plan.slow,
    )

    def store(field: str, value: str) -> str:
        if building is not None:
            return f"o.{field} = {value}"
        names[f"_set_{field}"] = cls.__dict__[field].__set__  # the slot's descriptor
        return f"_set_{field}(o, {value})"

    def inline(source: str, i: int, v: str, indent: int) -> list[str]:
        pad = " " * indent
        return [pad + line for line in source.format(v=v, i=i).splitlines()]

    # ``absent`` counts the fields read as None (missing, or null): then ``len(data) +
    # absent == len(fields)`` proves that data holds no key the model does not know,
    # without looking at each key; otherwise (a null, or an unknown key) they are looked at.
    body: list[str] = ["o = _new(_building)", "get = data.get", "absent = 0"]
    checks: list[str] = []
    for i, f in enumerate(plan.fields):
        code = plan.code[f.name]
        names.update(code.names)
        v = f"v{i}"
        body.append(f"{v} = get({f.name!r})")
        if f.default is attrs.NOTHING:
            # Required: without it the reference path raises attrs' own TypeError.
            body += [f"if {v} is None:", "    return _slow(data)"]
            body += inline(code.source, i, v, 0)
        elif f.default is None:
            body.append(f"if {v} is not None:")
            body += inline(code.source, i, v, 4)
            body += ["else:", "    absent += 1"]
        else:
            names[f"_default{i}"] = _constant_default(f)
            body += [f"if {v} is None:", f"    {v} = _default{i}", "    absent += 1", "else:"]
            body += inline(code.source, i, v, 4)
        if f.validator is not None:
            names[f"_validator{i}"] = f.validator
            names[f"_attribute{i}"] = f
            checks.append(f"_validator{i}(o, _attribute{i}, {v})")
        body.append(store(f.name, v))
    body += [
        f"if len(data) + absent == {len(plan.fields)} or data.keys() <= _known:",
        f"    {store('extra', '_empty')}",
        "else:",
        f"    {store('extra', '_proxy({k: data[k] for k in data if k not in _known})')}",
    ]
    if building is not None:
        body.append("o.__class__ = _cls")
    if checks:
        body += ["if not _validators_disabled():", *(f"    {check}" for check in checks)]
    if hasattr(cls, "__attrs_post_init__"):
        body.append("o.__attrs_post_init__()")
    lines = [
        "def decode(data, _cl=None):",
        "    if type(data) is not dict and not isinstance(data, dict):",
        f"        raise TypeError('expected an object for {cls.__name__}, got '"
        " + type(data).__name__)",
        "    try:",
        *(f"        {line}" for line in body),
        "    except Exception:",
        "        # What the inlined readers do not take: the reference path reads the answer",
        "        # field by field, each unreadable one kept in extra.",
        "        return _slow(data)",
        "    return o",
    ]
    source = "\n".join(lines) + "\n"
    filename = f"<pecapi decoder {cls.__module__}.{cls.__qualname__} {next(_serial)}>"
    # In linecache, so that a traceback through a decoder shows its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), names)
    decode: Callable[[Any], Any] = names["decode"]
    decode.__name__ = decode.__qualname__ = f"decode_{cls.__name__}"
    return decode


def _check_supported(cls: type[Any]) -> None:
    """Refuse a model whose ``__init__`` does what a decoder does not: the decoder stores
    each value as read, where that ``__init__`` would convert it, cache a hash or run a
    pre-init hook, and so the two paths would disagree."""
    if hasattr(cls, "__attrs_pre_init__") or "_attrs_cached_hash" in getattr(cls, "__slots__", ()):
        raise TypeError(f"{cls.__name__}: the decoders take no __attrs_pre_init__ nor cache_hash")
    for f in attrs.fields(cls):
        if f.converter is not None or not f.init or f.alias != f.name:
            raise TypeError(
                f"{cls.__name__}.{f.name}: the decoders take fields set by __init__ as given"
                " (no converter, init=False or alias)"
            )


def _constant_default(f: attrs.Attribute[Any]) -> Any:
    if isinstance(f.default, attrs.Factory):  # type: ignore[arg-type]
        raise TypeError(f"{f.name}: the decoders take constant defaults only")
    return f.default
