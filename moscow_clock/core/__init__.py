"""Pure logic: time, the wire protocol, origins, rates, settings. No I/O; "now" is a parameter."""
