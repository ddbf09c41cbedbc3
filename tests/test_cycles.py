"""A finished request leaves no cyclic garbage behind (issue 18).

The collector's policy freezes what is alive after a long full collection;
a request in flight then is frozen with it, and if it dies in a cycle, the
cycle outlives it until a sweep. With churn, freezes keep coming and that
garbage piled up (docs/PERFORMANCE.md, "Memory under churn"): every 404
kept its whole connection, because werkzeug's NotFound, kept on the request
as its routing exception, holds a traceback whose frames hold the request.
So what a request leaves must be freed by reference counting alone: checked
here with the collector off."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from quart import Quart, request


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("path", "status"), [("/no-such-page", 404), ("/api/no-such-thing", 404), ("/", 200)]
)
async def test_a_request_is_freed_without_the_collector(
    app: Quart, no_collector: None, path: str, status: int
) -> None:
    seen: list[weakref.ref[object]] = []

    @app.before_request
    async def remember() -> None:
        seen.append(weakref.ref(request._get_current_object()))  # type: ignore[attr-defined]

    client = app.test_client()
    response = await client.get(path)
    assert response.status_code == status
    del response
    assert len(seen) == 1
    assert seen[0]() is None, "the request is kept alive by a cycle"
