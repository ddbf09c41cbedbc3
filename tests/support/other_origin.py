"""A tiny HTTP server on another origin (localhost vs 127.0.0.1) that serves
one parent page, to frame the clock the way another site would."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from .server import free_port


class ParentPage:
    def __init__(self, html: str = "") -> None:
        self.html = html  # what every GET gets; a test may change it
        parent = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = parent.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """`localhost`, not 127.0.0.1: a different origin from the clock's."""
        return f"http://localhost:{self.port}/"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
