"""The ASGI edge: the Quart app, its routes and error pages, and the raw /ws endpoint."""
