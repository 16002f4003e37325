"""sha256 fingerprints of data files and derived texts.

A stage is skipped on re-run only when its inputs are unchanged, so every input (a PDF, a CSV, the
exact train/held-out texts a split produced) is identified by a content hash, never by a path or mtime.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large files are never held in memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_texts(*texts: str) -> str:
    """Hex sha256 of several texts; each is length-prefixed so ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()
