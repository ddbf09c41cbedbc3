"""Static files, compressed: gzip and brotli variants chosen by Accept-Encoding.

The page's JavaScript, CSS and SVG are text that compresses to a third; the
variants are made once, not per request: at start-up into memory (gzip from
the standard library, brotli if the `brotli` module is installed), or read
from `<file>.gz` / `<file>.br` beside the file where the image build made them
(`python moscow_clock/web/assets.py DIR`, run in the Dockerfiles' build stage,
so the images ship the variants but not the brotli module). A variant is kept
only if it saves something.

Each static response of a compressible file says `Vary: Accept-Encoding`; a
variant has its own ETag (the identity's content hash plus the coding) and
Content-Length, answers If-None-Match with 304, and HEAD like GET. A request
with `Range` gets the identity file, ranges and all, as Quart serves it: a
range of a compressed variant is of no use to anyone. Precompressed siblings
are never served under their own names. Sizes: docs/page-delivery.md.

This module imports nothing of the package, so the image build can run it
as a script.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Text types worth compressing; images (PNG) are compressed already.
COMPRESSIBLE = frozenset((".js", ".mjs", ".css", ".svg", ".json", ".webmanifest", ".txt"))
# The server's preference among codings the client accepts equally.
CODINGS = ("br", "gzip")
SUFFIX = {"br": ".br", "gzip": ".gz"}
# A variant must save at least this share of the identity's bytes.
MIN_SAVING = 0.05
GZIP_LEVEL = 9
BROTLI_QUALITY = 11


@dataclass(frozen=True, slots=True)
class Variant:
    data: bytes
    etag: str


def _brotli() -> Callable[[bytes], bytes] | None:
    """brotli.compress at its best quality, or None without the module."""
    try:
        module = importlib.import_module("brotli")
    except ImportError:
        return None

    def compress(data: bytes) -> bytes:
        result = module.compress(data, quality=BROTLI_QUALITY)
        assert isinstance(result, bytes)
        return result

    return compress


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, GZIP_LEVEL, mtime=0)  # the same bytes on every start


def compressors() -> dict[str, Callable[[bytes], bytes]]:
    found: dict[str, Callable[[bytes], bytes]] = {"gzip": _gzip}
    brotli = _brotli()
    if brotli is not None:
        found["br"] = brotli
    return found


def compressible(path: Path) -> bool:
    return path.suffix in COMPRESSIBLE and path.is_file() and not path.name.startswith(".")


def is_precompressed(path: Path) -> bool:
    """A variant beside its file (`main.js.br`): build output, not a URL."""
    return path.suffix in SUFFIX.values() and path.with_suffix("").suffix in COMPRESSIBLE


def load_variants(static_dir: Path) -> dict[str, dict[str, Variant]]:
    """{relative path: {coding: variant}} for every compressible file."""
    make = compressors()
    found: dict[str, dict[str, Variant]] = {}
    for path in sorted(static_dir.rglob("*")):
        if not compressible(path):
            continue
        raw = path.read_bytes()
        digest = hashlib.sha256(raw).hexdigest()[:20]
        variants: dict[str, Variant] = {}
        for coding in CODINGS:
            sibling = path.with_name(path.name + SUFFIX[coding])
            if sibling.is_file() and sibling.stat().st_mtime >= path.stat().st_mtime:
                data = sibling.read_bytes()
            elif coding in make:
                data = make[coding](raw)
            else:
                continue
            if len(data) <= len(raw) * (1 - MIN_SAVING):
                variants[coding] = Variant(data, f"{digest}-{coding}")
        if variants:
            found[path.relative_to(static_dir).as_posix()] = variants
    return found


def precompress(static_dir: Path) -> int:
    """Writes `<file>.gz` and `<file>.br` beside each compressible file (the
    image build); returns how many were written."""
    make = compressors()
    if "br" not in make:
        raise SystemExit("precompress: the brotli module is not installed")
    written = 0
    for path in sorted(static_dir.rglob("*")):
        if not compressible(path):
            continue
        raw = path.read_bytes()
        for coding, compress in make.items():
            path.with_name(path.name + SUFFIX[coding]).write_bytes(compress(raw))
            written += 1
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python moscow_clock/web/assets.py STATIC_DIR")
    print(f"precompressed: {precompress(Path(sys.argv[1]))} files")
