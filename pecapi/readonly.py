"""A read-only mapping that pickles and copies.

``types.MappingProxyType`` does neither: a decoded model holding one (its ``extra``) could
not be pickled, deep-copied or sent to another process (a job queue, multiprocessing).
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any

__all__ = ["ReadOnlyDict"]


class ReadOnlyDict(Mapping[str, Any]):
    """A mapping that cannot be changed: the fields of an answer the models do not know,
    and other values pecapi hands out. Equal to any mapping with the same items;
    ``copy()`` and ``|`` give a plain ``dict``, as ``MappingProxyType``'s did."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        self._data: dict[str, Any] = dict(data)

    @classmethod
    def adopt(cls, data: dict[str, Any]) -> ReadOnlyDict:
        """A ReadOnlyDict of ``data`` itself, not a copy: for a dict nobody else holds
        (the decoders' fresh ``extra``)."""
        made = cls.__new__(cls)
        made._data = data
        return made

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __reversed__(self) -> Iterator[str]:
        return reversed(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def values(self) -> ValuesView[Any]:
        return self._data.values()

    def items(self) -> ItemsView[str, Any]:
        return self._data.items()

    def copy(self) -> dict[str, Any]:
        return dict(self._data)

    def __or__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return {**self._data, **other}

    def __ror__(self, other: Mapping[str, Any]) -> dict[str, Any]:
        return {**other, **self._data}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadOnlyDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # like a dict: its values may change

    def __reduce__(self) -> tuple[Any, ...]:
        return (ReadOnlyDict, (self._data,))

    def __repr__(self) -> str:
        return f"ReadOnlyDict({self._data!r})"
