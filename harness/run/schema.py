"""Schema versions of the JSON files harness saves, and the check every reader makes before parsing.

Each saved record (results, manifest, run.json, grid.json, the data inspection) carries
`schema_version`. A file without one was written before versions were recorded and reads as version 1;
a version this harness does not read stops with one line naming the file, the version found, the
versions read here, and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationInfo, model_validator

from harness.core.atomic import atomic_write_text
from harness.core.errors import HarnessError


def check_schema_version(data: Any, path: Path | str, reads: tuple[int, ...]) -> None:
    """Refuse a record whose `schema_version` is not one of `reads` (a missing version counts as 1)."""
    found = data.get("schema_version", 1) if isinstance(data, dict) else 1
    if found not in reads:
        raise HarnessError(
            f"{path}: schema_version {found!r} is not one this harness reads ({', '.join(map(str, reads))}); "
            "upgrade harness to read it, or re-run `harness run-all --fresh` to rewrite it"
        )


class VersionedRecord(BaseModel):
    """A pydantic model saved as JSON (a file of its own, or a field of another record), with its schema version.

    The version is checked before any field, also where the record is nested in another one, so an
    unknown version is reported as such rather than as whichever field changed.
    """

    READS_VERSIONS: ClassVar[tuple[int, ...]] = (1,)
    schema_version: int = 1

    @model_validator(mode="before")
    @classmethod
    def _readable_version(cls, data: Any, info: ValidationInfo) -> Any:
        """Check the version; a record read from a file without one is version 1, whatever the current one is."""
        path = (info.context or {}).get("path")
        check_schema_version(data, path or cls.__name__, cls.READS_VERSIONS)
        if path is not None and isinstance(data, dict) and "schema_version" not in data:
            data = {**data, "schema_version": 1}
        return data

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: Path):
        """The record in `path`; JSON or fields that do not parse raise ValueError, an unknown version HarnessError."""
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"), context={"path": Path(path)})
