"""Per-process state: the ticker, websocket sessions, admission, counters and metrics."""
