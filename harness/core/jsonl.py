"""Reading JSON Lines data files, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError


def not_utf8(path: Path, line: int, byte: int) -> HarnessError:
    """The error for a text file with a byte that is not UTF-8. Replacing such bytes instead would train
    and score on mangled text, and the decoders' own errors give only a byte offset."""
    return HarnessError(f"{path}:{line}: not UTF-8 text (byte 0x{byte:02x}; mixed or legacy encoding?); re-save the file as UTF-8")


def read_jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a line that is not UTF-8 or not a JSON object is a user error."""
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(path, number, raw[exc.start]) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HarnessError(f"{path}:{number}: not valid JSON ({exc.msg}); fix that line") from exc
            if not isinstance(row, dict):
                raise HarnessError(f"{path}:{number}: expected a JSON object per line")
            yield number, row
