"""Decoded answers pickle and copy: users send them to other processes (a job queue,
multiprocessing) and cache them. Their ``extra`` (the fields the models do not know) is a
read-only mapping that survives both, and still cannot be changed."""

from __future__ import annotations

import copy
import pickle

import pytest

from pecapi import Mailbox, PecClient
from pecapi.readonly import ReadOnlyDict
from pecapi.testing import DEFAULT_TOKEN, Emulator


async def test_a_decoded_mailbox_pickles_and_copies() -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    async with (
        emulator.serve() as pec,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec.url) as client,
    ):
        box = await client.mailboxes.get(box_id)
        listing = await client.mailboxes.list()
    for value in (box, listing):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value
    again = pickle.loads(pickle.dumps(box))
    assert type(again) is Mailbox and again.id == box_id and again.extra == {}


def test_extra_fields_survive_pickling_and_stay_read_only() -> None:
    from pecapi.models.converter import structure
    from pecapi.testing import samples

    data = {**samples.mailbox_body("a@testcert.legalmail.it"), "id": "1", "nuovo": [1, 2]}
    box = structure(data, Mailbox)
    assert box.extra["nuovo"] == [1, 2]
    for again in (pickle.loads(pickle.dumps(box)), copy.deepcopy(box)):
        assert again.extra == {"nuovo": [1, 2]} == box.extra
        assert isinstance(again.extra, ReadOnlyDict)
        with pytest.raises(TypeError):
            again.extra["nuovo"] = 3  # type: ignore[index]


def test_a_read_only_dict_behaves_like_the_mapping_it_replaced() -> None:
    extra = ReadOnlyDict({"a": 1})
    assert extra == {"a": 1} and dict(a=1) == extra and extra != {"a": 2}
    assert extra.copy() == {"a": 1} and type(extra.copy()) is dict
    assert extra | {"b": 2} == {"a": 1, "b": 2}
    assert {"b": 2} | extra == {"b": 2, "a": 1}
    assert list(extra.items()) == [("a", 1)] and extra.get("z") is None and "a" in extra
    with pytest.raises(TypeError):
        hash(extra)
    with pytest.raises(AttributeError):
        extra.update({"b": 2})  # type: ignore[attr-defined]


def test_a_read_only_dict_reverses_like_a_dict() -> None:
    assert list(reversed(ReadOnlyDict({"a": 1, "b": 2}))) == ["b", "a"]
