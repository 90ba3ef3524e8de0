"""litserve.jsonx: Python ``json``'s values at orjson's speed."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel

from litserve import jsonx


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0) and NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**200), 2**200)
           | st.floats() | st.text())
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                      | st.dictionaries(st.text(max_size=5), kids, max_size=4), max_leaves=20)
finite = st.recursive(st.none() | st.booleans() | st.integers(-(2**200), 2**200)
                      | st.floats(allow_nan=False, allow_infinity=False)
                      | st.text(),
                      lambda kids: st.lists(kids, max_size=4)
                      | st.dictionaries(st.text(max_size=5), kids, max_size=4), max_leaves=20)


# -- loads -------------------------------------------------------------------------------------
@given(values, st.booleans())
@example([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**40], True)
@example({"nan": math.nan, "inf": math.inf, "ninf": -math.inf}, True)
def test_loads_gives_what_json_loads_gives(value: Any, ascii: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii)
    assert same(jsonx.loads(text.encode()), json.loads(text))


JSONISH = st.text(alphabet='0123456789-+.eE[]{}",: \tNaInfinityrulsx\\', max_size=24)


@given(JSONISH)
@example("1e400")
@example("[-1E999, 1e-999]")
@example('"\\ud800"')
@example("NaN ")
@example("-Infinity")
@example("nan")
@example("[1,]")
@example("12345678901234567890123,")
def test_loads_accepts_exactly_what_json_loads_accepts(text: str) -> None:
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(jsonx.JSONDecodeError):
            jsonx.loads(text.encode())
        return
    assert same(jsonx.loads(text.encode()), expected)


def test_loads_takes_memoryviews_and_raises_one_error_type() -> None:
    assert jsonx.loads(memoryview(b'{"id": 123456789012345678901234567890}')) == {
        "id": 123456789012345678901234567890}
    assert same(jsonx.loads(memoryview(b"[NaN]")), [math.nan])
    for bad in (b"\xff", b'["\xff", 12345678901234567890123]', b"[" * 5000 + b"]" * 5000,
                b"1" * 5000, b""):
        with pytest.raises(orjson.JSONDecodeError):  # a ValueError, like json's
            jsonx.loads(bad)


def test_loads_names_the_digit_limit() -> None:
    with pytest.raises(jsonx.JSONDecodeError, match="4300 digits"):
        jsonx.loads(b"[" + b"7" * 4301 + b"]")


def test_small_bodies_take_orjson_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("Python's json was used")

    monkeypatch.setattr(jsonx.json, "loads", refuse)
    assert jsonx.loads(b'{"input": 4.5, "ids": [123456789012345678, -1], "s": "hello"}') == {
        "input": 4.5, "ids": [123456789012345678, -1], "s": "hello"}
    with pytest.raises(AssertionError, match="Python's json"):
        jsonx.loads(b"[12345678901234567890]")  # a 20-digit run: Python's json decides


@pytest.mark.parametrize("pad", [0, 40, 5000])  # the regex (short texts) and the long scan
@pytest.mark.parametrize("digits", [18, 19, 20, 40])
def test_digit_runs_decide_the_path_in_short_and_long_texts(
        monkeypatch: pytest.MonkeyPatch, pad: int, digits: int) -> None:
    number = int("9" * digits)
    text = b'{"pad": "%s", "n": -%d}' % (b"x" * pad, number)
    calls: list[str] = []
    python_loads = json.loads
    monkeypatch.setattr(jsonx.json, "loads", lambda s: calls.append(s) or python_loads(s))
    assert same(jsonx.loads(memoryview(text)), {"pad": "x" * pad, "n": -number})
    assert bool(calls) is (digits >= 19)


# -- dumps -------------------------------------------------------------------------------------
@given(values)
def test_dumps_writes_what_orjson_writes_when_orjson_can(value: Any) -> None:
    try:
        expected = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:
        return
    assert jsonx.dumps(value) == expected


@given(finite)
@example({"big": 2**100, "edges": [2**63 - 1, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]})
def test_dumps_then_loads_gives_the_value_back(value: Any) -> None:
    assert same(jsonx.loads(jsonx.dumps(value)), value)


class Point(BaseModel):
    x: int


@dataclasses.dataclass
class Row:
    id: int


def to_plain(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def test_dumps_falls_back_with_the_same_conversions() -> None:
    value = {"big": 2**70, "model": Point(x=2**80), "array": np.arange(3),
             "objects": np.array([2**65, 1], dtype=object), "row": Row(2**90),
             "when": datetime.date(2024, 5, 1), "nan": math.nan, "lone": "a\ud800b",
             "tuple": (1, 2**64)}
    assert json.loads(jsonx.dumps(value, default=to_plain)) == {
        "big": 2**70, "model": {"x": 2**80}, "array": [0, 1, 2], "objects": [2**65, 1],
        "row": {"id": 2**90}, "when": "2024-05-01", "nan": None, "lone": "a\ud800b",
        "tuple": [1, 2**64]}


def test_dumps_refuses_what_orjson_refuses() -> None:
    loop: list[Any] = [2**70]
    loop.append(loop)
    for value, message in [({1: 2**70}, "Dict key must be str"), (loop, "nested deeper"),
                           ([2**70, object()], "not JSON serializable: object")]:
        with pytest.raises(TypeError, match=message):
            jsonx.dumps(value)

    def broken(obj: Any) -> Any:
        raise ValueError("no")

    with pytest.raises(TypeError, match="not JSON serializable") as info:
        jsonx.dumps([2**70, object()], default=broken)
    assert isinstance(info.value.__cause__, ValueError)
