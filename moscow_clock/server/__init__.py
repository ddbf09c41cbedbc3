"""The server: Hypercorn, guarded and tuned, and the process supervisor. Imports no app code."""
