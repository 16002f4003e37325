"""Reading JSON Lines data files, with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def read_jsonl_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a line that is not a JSON object is a user error."""
    with Path(path).open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise HarnessError(f"{path}:{number}: not valid JSON ({exc.msg}); fix that line") from exc
            if not isinstance(row, dict):
                raise HarnessError(f"{path}:{number}: expected a JSON object per line")
            yield number, row
