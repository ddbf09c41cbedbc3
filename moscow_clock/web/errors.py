"""Error responses: short, in the format the caller reads, never a traceback.

API paths and clients that prefer JSON get `{"error": ..., "status": ...}`;
browsers get a small page in the clock's own style. Anything unexpected is
answered with a plain 500 and logged here with its traceback, at most once
per `TRACEBACK_EVERY_S` (a request that fails every time must not fill the
log: the next traceback says how many were left out).
"""

from __future__ import annotations

import logging
import time

from quart import Quart, Response, has_request_context, jsonify, render_template, request, websocket
from werkzeug.exceptions import HTTPException, InternalServerError

from ..core.preferences import prefers_json
from ..core.ratelimit import Every
from .l10n import gettext as _

log = logging.getLogger(__name__)

TRACEBACK_EVERY_S = 10.0
_tracebacks = Every(TRACEBACK_EVERY_S)


def register_error_pages(app: Quart) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


async def _http_error(error: HTTPException) -> Response:
    _forget(error)
    status = error.code or 500
    if _wants_json():
        response = jsonify(error=error.name, status=status)
    else:
        html = await render_template(
            "error.html", status=status, title=_title(error), description=_describe(error)
        )
        response = Response(html, content_type="text/html; charset=utf-8")
    response.status_code = status
    # Keep what werkzeug adds for the client: Allow on 405, Retry-After, ...
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


def _forget(error: Exception) -> None:
    """Break the cycle an answered error would die in: its traceback's frames
    hold the request, and the request holds a routing error (a 404, a 405)
    as its `routing_exception`. Left to the collector, it could be frozen
    with the request while in flight and outlive it (server/collector.py;
    issue 18: every 404 kept its whole connection that way)."""
    error.__traceback__ = None
    if has_request_context() and request.routing_exception is error:
        request.routing_exception = None


async def _unexpected_error(error: Exception) -> Response:
    where = f"{request.method} {request.path}" if has_request_context() else websocket.path
    if _tracebacks.due(time.monotonic()):
        log.error(
            "unhandled error on %s (%d more since the last one logged)",
            where,
            _tracebacks.take_suppressed(),
            exc_info=error,
        )
    _forget(error)
    return await _http_error(InternalServerError())


def _wants_json() -> bool:
    if not has_request_context():  # a refused websocket handshake
        return True
    if request.path.startswith("/api/"):
        return True
    # Not `request.accept_mimetypes`: that parses the whole header.
    return prefers_json(request.headers.get("Accept"))


def _title(error: HTTPException) -> str:
    titles = {
        400: _("Bad Request"),
        404: _("Not Found"),
        405: _("Method Not Allowed"),
        413: _("Request Entity Too Large"),
        421: _("Misdirected Request"),
        431: _("Request Header Fields Too Large"),
        500: _("Internal Server Error"),
    }
    return titles.get(error.code or 500, error.name)


def _describe(error: HTTPException) -> str:
    if error.code == 400 and error.description != type(error).description:
        return str(error.description)  # ours, already translated (a bad parameter)
    return {
        404: _("There is nothing at this address."),
        405: _("This address does not take that method."),
        413: _("The request is too large."),
        421: _("This server does not serve that host name."),
        431: _("The request headers are too large."),
    }.get(error.code or 500, _("The request could not be served."))
