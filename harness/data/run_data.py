"""Every dataset a run needs, loaded and split once, with fingerprints that key resume and caches."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.run.config import HarnessConfig
from harness.data.conversations import CounselingData, load_counseling
from harness.data.corpus import DomainCorpus, load_domain_corpus
from harness.core.errors import HarnessError
from harness.core.fingerprint import sha256_texts
from harness.data.safety_prompts import SafetyPrompt, load_safety_prompts


SPLIT_KEYS = {"domain": "domain_split", "instruct": "counseling_split"}
"""Stage -> the fingerprint key of the train/held-out split its data comes from."""


@dataclass(frozen=True)
class RunData:
    corpus: DomainCorpus
    counseling: CounselingData
    safety: list[SafetyPrompt]

    def fingerprints(self) -> dict[str, str]:
        """sha256 of each input and of each split: equal fingerprints mean identical data."""
        return {
            **self.stage_fingerprints("domain"),
            **self.stage_fingerprints("instruct"),
            "safety_prompts": sha256_texts(*(f"{p.id}\t{p.category}\t{p.prompt}" for p in self.safety)),
        }

    def stage_fingerprints(self, stage: str) -> dict[str, str]:
        """The fingerprints of what one stage trains on: its input and its split (`SPLIT_KEYS[stage]`)."""
        if stage == "domain":
            key, value = self.corpus.documents_fingerprint()
            return {key: value, SPLIT_KEYS[stage]: self.corpus.split_fingerprint()}
        return {"counseling_file": self.counseling.sha256, SPLIT_KEYS[stage]: self.counseling.split_fingerprint()}

    def stage_sources(self, stage: str) -> list[str]:
        """What one stage trains on by name and content hash: `NAME@sha256:HASH` per document or data file."""
        if stage == "domain":
            return [f"{document.path.name}@sha256:{document.sha256}" for document in self.corpus.documents]
        source = Path(self.counseling.source)
        return [f"{source.name if source.is_file() else self.counseling.source}@sha256:{self.counseling.sha256}"]


@contextlib.contextmanager
def data_file_errors() -> Iterator[None]:
    """Turn an OS error on a data file the config names (a path too long for the file system, no
    permission) into the one-line user error it is."""
    try:
        yield
    except OSError as exc:
        raise HarnessError(f"{exc.filename or 'a data file'}: cannot be read ({exc.strerror}); fix its path in the config's `data` section") from exc


def load_run_data(config: HarnessConfig) -> RunData:
    with data_file_errors():
        return RunData(
            corpus=load_domain_corpus(config.data.domain),
            counseling=load_counseling(config.data.counseling, config.seed),
            safety=load_safety_prompts(config.data.safety),
        )
