"""Static files under any Range, If-Range, If-None-Match, method and path:
the RFC 9110 answer for the ranges we know, and for everything else some
2xx/3xx/4xx and nothing in the log above a warning (issue 18: a suffix range
answered 500 with a traceback each)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from quart import Quart
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestedRangeNotSatisfiable

from moscow_clock import create_app
from moscow_clock.web import errors
from moscow_clock.web.ranges import byte_range

from .conftest import FIXED_MS, SYNCED

STATIC = Path(__file__).resolve().parents[1] / "static"
FILE = "/static/js/offset.js"
BYTES = (STATIC / "js" / "offset.js").read_bytes()
SIZE = len(BYTES)


def get(
    app: Quart, path: str = FILE, method: str = "GET", **headers: str
) -> tuple[int, Headers, bytes]:
    async def go() -> tuple[int, Headers, bytes]:
        response = await app.test_client().open(path, method=method, headers=headers)
        return response.status_code, response.headers, await response.get_data()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def static_app() -> Quart:
    return create_app(clock=lambda: FIXED_MS, clock_source=lambda: SYNCED)


@pytest.mark.parametrize("n", [1, 2, 100, SIZE - 1, SIZE])
def test_a_suffix_range_is_the_last_n_bytes(static_app: Quart, n: int) -> None:
    status, headers, body = get(static_app, Range=f"bytes=-{n}")
    assert status == 206
    assert body == BYTES[-n:]
    assert headers["Content-Range"] == f"bytes {SIZE - n}-{SIZE - 1}/{SIZE}"
    assert headers["Content-Length"] == str(n)


def test_a_suffix_longer_than_the_file_is_the_whole_file(static_app: Quart) -> None:
    status, headers, body = get(static_app, Range=f"bytes=-{SIZE + 4291}")
    assert status == 206
    assert body == BYTES
    assert headers["Content-Range"] == f"bytes 0-{SIZE - 1}/{SIZE}"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-", 10, SIZE - 1),
        ("bytes=5-9", 5, 9),
        ("bytes=0-99999", 0, SIZE - 1),
    ],
)
def test_ranges_from_a_start(static_app: Quart, header: str, first: int, last: int) -> None:
    status, headers, body = get(static_app, Range=header)
    assert status == 206
    assert body == BYTES[first : last + 1]
    assert headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}"])
def test_a_range_past_the_end_is_416_with_the_length(static_app: Quart, header: str) -> None:
    status, headers, _ = get(static_app, Range=header)
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{SIZE}"


@pytest.mark.parametrize(
    "header", ["items=0-1", "bytes=0-1,5-9", "bytes=abc", "bytes=-0", "bytes=9-3", "bytes", ""]
)
def test_a_range_to_ignore_gets_the_whole_file(static_app: Quart, header: str) -> None:
    status, _, body = get(static_app, Range=header)
    assert status == 200
    assert body == BYTES


def test_if_range_applies_the_range_only_while_the_etag_matches(static_app: Quart) -> None:
    _, headers, _ = get(static_app)
    etag = headers["ETag"]
    status, _, body = get(static_app, Range="bytes=-5", **{"If-Range": etag})
    assert (status, body) == (206, BYTES[-5:])
    status, _, body = get(static_app, Range="bytes=-5", **{"If-Range": '"stale"'})
    assert (status, body) == (200, BYTES)
    status, _, _ = get(static_app, **{"If-None-Match": etag})
    assert status == 304


def test_byte_range_for_an_empty_file() -> None:
    with pytest.raises(RequestedRangeNotSatisfiable):
        byte_range("bytes=-1", 0)
    with pytest.raises(RequestedRangeNotSatisfiable):
        byte_range("bytes=0-", 0)


@contextmanager
def logged() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)


token = st.text(alphabet='0123456789-,= abcdefbytes*"W/', max_size=24)
number = st.one_of(
    st.integers(min_value=0, max_value=2 * SIZE), st.integers(min_value=0, max_value=10**20)
).map(str)
range_spec = st.lists(
    st.tuples(st.one_of(st.just(""), number), st.one_of(st.just(""), number)).map("-".join),
    min_size=1,
    max_size=3,
).map(",".join)
range_header = st.one_of(range_spec.map(lambda spec: f"bytes={spec}"), token)
validator = st.one_of(token, st.just('"x"'), st.just("*"), st.just("Wed, 21 Oct 2015 07:28:00 GMT"))
files = st.sampled_from(
    [FILE, "/static/clock.css", "/static/favicon.svg", "/static/icons/icon-192.png"]
)
paths = st.one_of(
    files, st.text(alphabet="abc./%-_~", max_size=20).map(lambda tail: f"/static/{tail}")
)
methods = st.one_of(
    st.sampled_from(["GET", "HEAD"]),
    st.sampled_from(["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "BREW"]),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Range": range_header,
        "If-Range": validator,
        "If-None-Match": validator,
        "If-Match": validator,
        "If-Modified-Since": validator,
    },
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=paths, method=methods, headers=headers)
@example(path=FILE, method="GET", headers={"Range": "bytes=-1"})  # the one issue 18 found
def test_no_request_on_a_static_file_is_answered_500(
    static_app: Quart, path: str, method: str, headers: dict[str, str]
) -> None:
    with logged() as records:
        status, _, _ = get(static_app, path, method, **headers)
    assert 200 <= status < 500, (status, path, method, headers)
    assert not [r for r in records if r.levelno >= logging.ERROR or r.exc_info]


def test_tracebacks_are_rate_limited(static_app: Quart, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that fails every time logs one traceback an interval, and
    the next says how many it left out."""

    async def broken() -> str:
        raise RuntimeError("boom")

    app = create_app(clock=lambda: FIXED_MS, clock_source=lambda: SYNCED)
    app.add_url_rule("/broken", "broken", broken)
    monkeypatch.setattr(errors, "_tracebacks", errors.Every(3600))
    with logged() as records:
        for _ in range(50):
            assert get(app, "/broken")[0] == 500
    assert len([r for r in records if r.exc_info]) == 1
    assert sum(len(r.getMessage()) for r in records) < 1000
