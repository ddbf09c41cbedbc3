"""Logging for the app and Hypercorn: readable lines, or JSON lines
(`LOG_JSON=true`) with the same fields as keys, for log shippers."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from hypercorn.logging import Logger as HypercornLogger

# Attributes every LogRecord has; anything else was passed in `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """The usual line, with any structured fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = fields_of(record)
        if extra:
            line += " " + " ".join(f"{key}={value}" for key, value in extra.items())
        return line


def configure(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if as_json
        else TextFormatter("%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


class AccessLogger(HypercornLogger):
    """Hypercorn's access log as structured fields. Built straight from the
    ASGI scope: Hypercorn's own atoms copy the whole environment per request."""

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        if self.access_logger is None:
            return
        client = request.get("client") or ("-", 0)
        method = request.get("method", "GET")
        status = response["status"] if response is not None else "-"
        self.access_logger.info(
            "%s %s %s",
            method,
            request["path"],
            status,
            extra={
                "remote": f"{client[0]}:{client[1]}",
                "method": method,
                "path": request["path"],
                "status": status,
                "duration_ms": round(request_time * 1000, 2),
                "user_agent": _header(request, b"user-agent"),
            },
        )


def _header(scope: Any, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin1"))
    return "-"
