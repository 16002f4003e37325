"""`harness data inspect`: what the data loaders produced, and whether train leaks into test.

Two leakage measures, both pure functions so reports can recompute or reuse them:
- held-out n-gram overlap: the share of the held-out text's 13-word shingles that also occur in the
  training text (near zero for a clean contiguous split; high when windows or sections overlap);
- question overlap: the share of test questions whose normalised text also appears in train.
Each one above its configured threshold is listed in `failures`; a domain failure names the passages
that repeat most, since a running header the cleanup missed (short, found many times) calls for another
fix than a copied page (long, found once or twice).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.run.config import DataConfig, HarnessConfig
from harness.run.record import (
    ArmLeakage, CounselingFacts, DataInspection, DocumentFacts, DomainFacts, RepeatedPassage, SafetyFacts, SectionFacts,
)
from harness.data.conversations import Conversation, CounselingData, question_key
from harness.data.corpus import CorpusDocument, DomainCorpus, join_sections, token_windows
from harness.data.run_data import RunData, load_run_data
from harness.data.safety_prompts import category_counts

NGRAM_N = 13


def _words(text: str) -> list[str]:
    """Words case-folded, punctuation dropped: the units shingles are made of."""
    return re.findall(r"[^\W_]+", text.casefold())


def word_shingles(text: str, n: int = NGRAM_N) -> set[tuple[str, ...]]:
    """Distinct runs of `n` consecutive words, case-folded, punctuation dropped."""
    words = _words(text)
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngram_overlap(train_text: str, heldout_text: str, n: int = NGRAM_N) -> float:
    """Share of the held-out text's distinct n-word shingles that also occur in the train text (0 when it has none)."""
    heldout = word_shingles(heldout_text, n)
    if not heldout:
        return 0.0
    return len(heldout & word_shingles(train_text, n)) / len(heldout)


SHOWN_WORDS = 12


def repeated_passages(train_text: str, heldout_text: str, n: int = NGRAM_N, top: int = 3) -> list[RepeatedPassage]:
    """The held-out passages also found in the training text, most often found first (then longest).

    A passage is a maximal run of held-out words whose every `n`-word shingle occurs in train; the same
    passage found at several places of the held-out text is counted, not listed, again.
    """
    train_words = _words(train_text)
    train_counts = Counter(tuple(train_words[i : i + n]) for i in range(len(train_words) - n + 1))
    words = _words(heldout_text)
    shared = [i for i in range(len(words) - n + 1) if tuple(words[i : i + n]) in train_counts]
    runs: list[list[int]] = []
    for i in shared:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    found: Counter[tuple[str, ...]] = Counter(tuple(words[start : end + n]) for start, end in runs)
    passages = [
        RepeatedPassage(
            text=" ".join(passage[:SHOWN_WORDS]) + (" …" if len(passage) > SHOWN_WORDS else ""),
            words=len(passage),
            train_count=min(train_counts[passage[i : i + n]] for i in range(len(passage) - n + 1)),
            heldout_count=count,
        )
        for passage, count in found.items()
    ]
    return sorted(passages, key=lambda p: (-(p.train_count + p.heldout_count), -p.words))[:top]


def question_overlap(train: list[Conversation], test: list[Conversation]) -> float:
    """Share of distinct test questions whose normalised text also occurs among the train questions."""
    test_questions = {question_key(conv.prompt) for conv in test}
    if not test_questions:
        return 0.0
    train_questions = {question_key(conv.prompt) for conv in train}
    return len(test_questions & train_questions) / len(test_questions)


@dataclass(frozen=True)
class Leakage:
    """The two leakage numbers, for reports and run manifests."""

    heldout_ngram_overlap: float
    ngram_n: int
    question_overlap: float
    repeated: list[RepeatedPassage] = field(default_factory=list)
    """The held-out passages found in train most often (`repeated_passages`)."""

    def failures(self, data: DataConfig) -> list[str]:
        """One line per measure above its threshold in the config."""
        found: list[str] = []
        if self.heldout_ngram_overlap > data.domain.max_ngram_overlap:
            found.append(
                f"domain: {self.heldout_ngram_overlap:.1%} of held-out {self.ngram_n}-gram shingles also occur in train "
                f"(data.domain.max_ngram_overlap = {data.domain.max_ngram_overlap:.1%}); the documents repeat passages "
                "across the split, remove the repeats or raise the threshold if they are expected"
                + (f"; most repeated: {', '.join(p.describe() for p in self.repeated)}" if self.repeated else "")
            )
        if self.question_overlap > data.counseling.max_question_overlap:
            found.append(
                f"counseling: {self.question_overlap:.1%} of test questions also occur in train "
                f"(data.counseling.max_question_overlap = {data.counseling.max_question_overlap:.1%})"
            )
        return found


def measure_leakage(train: RunData, heldout: RunData) -> Leakage:
    """How much of `heldout`'s held-out text and test questions the training part of `train` holds."""
    return Leakage(
        heldout_ngram_overlap=ngram_overlap(train.corpus.train_text, heldout.corpus.heldout_text),
        ngram_n=NGRAM_N,
        question_overlap=question_overlap(train.counseling.train, heldout.counseling.test),
        repeated=repeated_passages(train.corpus.train_text, heldout.corpus.heldout_text),
    )


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of one text, without special tokens (the way training windows are cut)."""
    return list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def _document_facts(document: CorpusDocument, tokenizer: Any) -> DocumentFacts:
    return DocumentFacts(
        document=document.path.name,
        kind=document.kind,
        pages=document.pages,
        chars=document.chars,
        sections=len(document.sections),
        split=document.split,
        train_tokens=len(token_ids(tokenizer, join_sections(document.train_sections))),
        heldout_tokens=len(token_ids(tokenizer, join_sections(document.heldout_sections))),
        sha256=document.sha256,
        path=str(document.path),
    )


def _domain_facts(corpus: DomainCorpus, config: HarnessConfig, tokenizer: Any, leakage: Leakage) -> DomainFacts:
    """The corpus in total (tokens of the joined texts training and evals use), then per document and per section."""
    train_ids = token_ids(tokenizer, corpus.train_text)
    heldout_ids = token_ids(tokenizer, corpus.heldout_text)
    heldout_start = len(corpus.train_sections)
    return DomainFacts(
        documents_fingerprint=corpus.documents_fingerprint()[1],
        split_fingerprint=corpus.split_fingerprint(),
        heldout_by=corpus.heldout_by,
        document_count=len(corpus.documents),
        pages=corpus.pages,
        chars=corpus.chars,
        sections=len(corpus.sections),
        train_sections=len(corpus.train_sections),
        heldout_sections=len(corpus.heldout_sections),
        heldout_char_share=len(corpus.heldout_text) / max(1, len(corpus.train_text) + len(corpus.heldout_text)),
        train_tokens=len(train_ids),
        heldout_tokens=len(heldout_ids),
        train_windows=len(token_windows(train_ids, config.data.domain.max_length, config.data.domain.stride)),
        documents=[_document_facts(document, tokenizer) for document in corpus.documents],
        section_list=[
            SectionFacts(
                index=s.index,
                document=s.document,
                title=s.title,
                first_page=s.first_page,
                chars=len(s.text),
                split="heldout" if s.index >= heldout_start else "train",
            )
            for s in corpus.sections
        ],
        heldout_ngram_overlap=leakage.heldout_ngram_overlap,
        ngram_n=leakage.ngram_n,
        max_ngram_overlap=config.data.domain.max_ngram_overlap,
        repeated_passages=leakage.repeated,
    )


def _counseling_facts(data: CounselingData, config: HarnessConfig, leakage: Leakage) -> CounselingFacts:
    return CounselingFacts(
        source=data.source,
        sha256=data.sha256,
        split_fingerprint=data.split_fingerprint(),
        rows_raw=data.rows_raw,
        distinct_questions_raw=data.distinct_questions_raw,
        distinct_question_ids_raw=data.distinct_question_ids_raw,
        rows_after_dedup=data.rows_after_dedup,
        rows_capped=data.rows_capped,
        train_rows=len(data.train),
        test_rows=len(data.test),
        train_questions=len({conv.question_id for conv in data.train}),
        test_questions=len({conv.question_id for conv in data.test}),
        question_overlap=leakage.question_overlap,
        max_question_overlap=config.data.counseling.max_question_overlap,
    )


def _arm_leakage(
    config: HarnessConfig, data: RunData, data_for: Callable[[HarnessConfig], RunData]
) -> tuple[dict[str, ArmLeakage], list[str]]:
    """Leakage of every arm that trains on data of its own into the run's held-out split (which all arms are scored on)."""
    summaries: dict[str, ArmLeakage] = {}
    failures: list[str] = []
    for arm in config.lineage.arms:
        if not any(key.startswith("data.") for key in arm.overrides):
            continue
        arm_config = config.arm_config(arm.name)
        leakage = measure_leakage(data_for(arm_config.model_copy(update={"seed": config.seed})), data)
        summaries[arm.name] = ArmLeakage(heldout_ngram_overlap=leakage.heldout_ngram_overlap, question_overlap=leakage.question_overlap)
        failures += [f"arm {arm.name}: {failure}" for failure in leakage.failures(arm_config.data)]
    return summaries, failures


def inspect_data(
    config: HarnessConfig, tokenizer: Any, data_for: Callable[[HarnessConfig], RunData] = load_run_data
) -> DataInspection:
    """Sizes, splits and leakage of the run's data; `data_for` loads (or returns already loaded) data."""
    data = data_for(config)
    leakage = measure_leakage(data, data)
    arms, arm_failures = _arm_leakage(config, data, data_for)
    return DataInspection(
        domain=_domain_facts(data.corpus, config, tokenizer, leakage),
        counseling=_counseling_facts(data.counseling, config, leakage),
        safety=SafetyFacts(
            counts=category_counts(data.safety),
            total=len(data.safety),
            sources=[str(source.path) for source in config.data.safety.sources],
        ),
        arms=arms,
        failures=leakage.failures(config.data) + arm_failures,
    )
