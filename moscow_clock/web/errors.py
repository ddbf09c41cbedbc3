"""Error responses: short, in the format the caller reads, never a traceback.

API paths and clients that prefer JSON get `{"error": ..., "status": ...}`;
browsers get a small page in the clock's own style. Anything unexpected is
logged here in full and answered with a plain 500.
"""

from __future__ import annotations

import logging

from quart import Quart, Response, has_request_context, jsonify, render_template, request, websocket
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def register_error_pages(app: Quart) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


async def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if _wants_json():
        response = jsonify(error=error.name, status=status)
    else:
        html = await render_template(
            "error.html", status=status, title=error.name, description=_describe(error)
        )
        response = Response(html, content_type="text/html; charset=utf-8")
    response.status_code = status
    # Keep what werkzeug adds for the client: Allow on 405, Retry-After, ...
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


async def _unexpected_error(error: Exception) -> Response:
    where = f"{request.method} {request.path}" if has_request_context() else websocket.path
    log.exception("unhandled error on %s", where, exc_info=error)
    return await _http_error(InternalServerError())


def _wants_json() -> bool:
    if not has_request_context():  # a refused websocket handshake
        return True
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _describe(error: HTTPException) -> str:
    return {
        404: "There is nothing at this address.",
        405: "This address does not take that method.",
        413: "The request is too large.",
        421: "This server does not serve that host name.",
        431: "The request headers are too large.",
    }.get(error.code or 500, "The request could not be served.")
