"""`harness data inspect`: what the data loaders produced, and whether train leaks into test.

Two leakage measures, both pure functions so reports can recompute or reuse them:
- held-out n-gram overlap: the share of the held-out text's 13-word shingles that also occur in the
  training text (near zero for a clean contiguous split; high when windows or sections overlap);
- question overlap: the share of test questions whose normalised text also appears in train.
Each one above its configured threshold is listed in `failures`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.run.config import DataConfig, HarnessConfig
from harness.run.record import ArmLeakage, CounselingFacts, DataInspection, DomainFacts, SafetyFacts, SectionFacts
from harness.data.conversations import Conversation, CounselingData, question_key
from harness.data.corpus import DomainCorpus, token_windows
from harness.data.run_data import RunData, load_run_data
from harness.data.safety_prompts import category_counts

NGRAM_N = 13


def word_shingles(text: str, n: int = NGRAM_N) -> set[tuple[str, ...]]:
    """Distinct runs of `n` consecutive words, case-folded, punctuation dropped."""
    words = re.findall(r"[^\W_]+", text.casefold())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngram_overlap(train_text: str, heldout_text: str, n: int = NGRAM_N) -> float:
    """Share of the held-out text's distinct n-word shingles that also occur in the train text (0 when it has none)."""
    heldout = word_shingles(heldout_text, n)
    if not heldout:
        return 0.0
    return len(heldout & word_shingles(train_text, n)) / len(heldout)


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

    def failures(self, data: DataConfig) -> list[str]:
        """One line per measure above its threshold in the config."""
        found: list[str] = []
        if self.heldout_ngram_overlap > data.domain.max_ngram_overlap:
            found.append(
                f"domain: {self.heldout_ngram_overlap:.1%} of held-out {self.ngram_n}-gram shingles also occur in train "
                f"(data.domain.max_ngram_overlap = {data.domain.max_ngram_overlap:.1%}); the document repeats passages "
                "across the split, remove the repeats or raise the threshold if they are expected"
            )
        if self.question_overlap > data.counseling.max_question_overlap:
            found.append(
                f"counseling: {self.question_overlap:.1%} of test questions also occur in train "
                f"(data.counseling.max_question_overlap = {data.counseling.max_question_overlap:.1%})"
            )
        return found


def measure_leakage(corpus: DomainCorpus, counseling: CounselingData) -> Leakage:
    return Leakage(
        heldout_ngram_overlap=ngram_overlap(corpus.train_text, corpus.heldout_text),
        ngram_n=NGRAM_N,
        question_overlap=question_overlap(counseling.train, counseling.test),
    )


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of one text, without special tokens (the way training windows are cut)."""
    return list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def _domain_facts(corpus: DomainCorpus, config: HarnessConfig, tokenizer: Any, leakage: Leakage) -> DomainFacts:
    train_ids = token_ids(tokenizer, corpus.train_text)
    heldout_ids = token_ids(tokenizer, corpus.heldout_text)
    heldout_start = len(corpus.train_sections)
    return DomainFacts(
        pdf=str(corpus.pdf_path),
        pdf_sha256=corpus.pdf_sha256,
        split_fingerprint=corpus.split_fingerprint(),
        pages=corpus.pages,
        chars=corpus.chars,
        sections=len(corpus.sections),
        train_sections=len(corpus.train_sections),
        heldout_sections=len(corpus.heldout_sections),
        heldout_char_share=len(corpus.heldout_text) / max(1, len(corpus.train_text) + len(corpus.heldout_text)),
        train_tokens=len(train_ids),
        heldout_tokens=len(heldout_ids),
        train_windows=len(token_windows(train_ids, config.data.domain.max_length, config.data.domain.stride)),
        section_list=[
            SectionFacts(
                index=s.index,
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
        own = data_for(arm_config.model_copy(update={"seed": config.seed}))
        leakage = Leakage(
            heldout_ngram_overlap=ngram_overlap(own.corpus.train_text, data.corpus.heldout_text),
            ngram_n=NGRAM_N,
            question_overlap=question_overlap(own.counseling.train, data.counseling.test),
        )
        summaries[arm.name] = ArmLeakage(heldout_ngram_overlap=leakage.heldout_ngram_overlap, question_overlap=leakage.question_overlap)
        failures += [f"arm {arm.name}: {failure}" for failure in leakage.failures(arm_config.data)]
    return summaries, failures


def inspect_data(
    config: HarnessConfig, tokenizer: Any, data_for: Callable[[HarnessConfig], RunData] = load_run_data
) -> DataInspection:
    """Sizes, splits and leakage of the run's data; `data_for` loads (or returns already loaded) data."""
    data = data_for(config)
    leakage = measure_leakage(data.corpus, data.counseling)
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
