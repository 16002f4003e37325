"""`RUN_DIR/run.json` and the data inspection inside it, as typed, versioned records.

The data inspection (`harness data inspect`, and the leakage check before training) describes what the
loaders produced; the run record adds when and on what the run ran. Fields added after the first
runs have defaults, so older run directories still read and render.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from harness.run.manifest import Determinism
from harness.run.schema import VersionedRecord


class SectionFacts(BaseModel):
    index: int
    title: str
    first_page: int | None = None
    chars: int
    split: str
    """`train` or `heldout`."""


class DomainFacts(BaseModel):
    pdf: str
    pdf_sha256: str
    split_fingerprint: str
    pages: int
    chars: int
    sections: int
    train_sections: int
    heldout_sections: int
    heldout_char_share: float
    train_tokens: int
    heldout_tokens: int
    train_windows: int
    section_list: list[SectionFacts] = []
    heldout_ngram_overlap: float
    ngram_n: int
    max_ngram_overlap: float | None = None


class CounselingFacts(BaseModel):
    source: str
    sha256: str
    split_fingerprint: str
    rows_raw: int
    distinct_questions_raw: int
    distinct_question_ids_raw: int | None = None
    rows_after_dedup: int
    rows_capped: int | None = None
    train_rows: int
    test_rows: int
    train_questions: int
    test_questions: int
    question_overlap: float
    max_question_overlap: float | None = None


class SafetyFacts(BaseModel):
    counts: dict[str, int]
    total: int
    sources: list[str]


class ArmLeakage(BaseModel):
    """Overlap of an arm's own training data with the run's held-out split (arms with data overrides)."""

    heldout_ngram_overlap: float
    question_overlap: float


class DataInspection(VersionedRecord):
    """Sizes, splits and leakage of a run's data; `failures` lists each overlap above its threshold."""

    domain: DomainFacts
    counseling: CounselingFacts
    safety: SafetyFacts
    arms: dict[str, ArmLeakage] = {}
    failures: list[str] = []

    def facts(self) -> dict[str, Any]:
        """The inspection as plain data for tables, in the order it was recorded, without the version field."""
        return self.model_dump(mode="json", exclude={"schema_version"}, exclude_unset=True)


class RunRecord(VersionedRecord):
    """What `harness run-all` saves as `run.json`: timings, arms, versions, hardware and the data inspection."""

    started: str | None = None
    finished: str | None = None
    wall_time_s: float | None = None
    arms: list[str] = []
    stage_wall_times: dict[str, float] = {}
    versions: dict[str, str] = {}
    hardware: dict[str, Any] = {}
    determinism: Determinism | None = None
    data_inspect: DataInspection | None = None
