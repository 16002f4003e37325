"""`RUN_DIR/run.json` and the data inspection inside it, as typed, versioned records.

The data inspection (`harness data inspect`, and the leakage check before training) describes what the
loaders produced; the run record adds when and on what the run ran. Fields added after the first
runs have defaults, so older run directories still read and render.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from harness.run.manifest import Determinism
from harness.run.schema import VersionedRecord


class SectionFacts(BaseModel):
    index: int
    document: str = ""
    """The file it comes from (absent in runs from before corpora had several documents)."""
    title: str
    first_page: int | None = None
    chars: int
    split: str
    """`train` or `heldout`."""


class DocumentFacts(BaseModel):
    """One document of the domain corpus and its part of the split."""

    document: str
    kind: str
    """`pdf`, `text` or `markdown`."""
    pages: int
    chars: int
    sections: int
    split: str
    """`train`, `heldout`, or `train+heldout` (its trailing sections held out)."""
    train_tokens: int
    heldout_tokens: int
    sha256: str
    path: str


class RepeatedPassage(BaseModel):
    """A run of held-out words, every `n`-word shingle of which also occurs in the training text."""

    text: str
    """Its words, case-folded; cut after a dozen with an ellipsis."""
    words: int
    train_count: int
    """How often its rarest shingle occurs in the training text: the whole passage occurs there at most that often."""
    heldout_count: int
    """How often it occurs in the held-out text."""

    def describe(self) -> str:
        return f'"{self.text}" ({self.words} words; {self.train_count}x in train, {self.heldout_count}x held out)'


class DomainFacts(BaseModel):
    pdf: str | None = None
    """The one PDF of runs from before corpora had several documents; `documents` lists them since."""
    pdf_sha256: str | None = None
    documents_fingerprint: str | None = None
    split_fingerprint: str
    heldout_by: str = "sections"
    document_count: int = 1
    pages: int
    chars: int
    sections: int
    train_sections: int
    heldout_sections: int
    heldout_char_share: float
    train_tokens: int
    heldout_tokens: int
    train_windows: int
    documents: list[DocumentFacts] = []
    section_list: list[SectionFacts] = []
    heldout_ngram_overlap: float
    ngram_n: int
    max_ngram_overlap: float | None = None
    repeated_passages: list[RepeatedPassage] = []
    """The held-out passages found in train most often."""


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
    """Sizes, splits and leakage of a run's data; `failures` lists each overlap above its threshold.

    Version 2 describes a corpus of documents (`domain.documents`); version 1 named one PDF (`domain.pdf`).
    """

    READS_VERSIONS: ClassVar[tuple[int, ...]] = (1, 2)
    schema_version: int = 2

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
    executor: str = "local"
    versions: dict[str, str] = {}
    hardware: dict[str, Any] = {}
    determinism: Determinism | None = None
    data_inspect: DataInspection | None = None
