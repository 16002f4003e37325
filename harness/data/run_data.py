"""Every dataset a run needs, loaded and split once, with fingerprints that key resume and caches."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from harness.run.config import HarnessConfig
from harness.data.conversations import CounselingData, load_counseling
from harness.data.corpus import DomainCorpus, load_domain_corpus
from harness.core.errors import HarnessError
from harness.core.fingerprint import sha256_texts
from harness.data.safety_prompts import SafetyPrompt, load_safety_prompts


@dataclass(frozen=True)
class RunData:
    corpus: DomainCorpus
    counseling: CounselingData
    safety: list[SafetyPrompt]

    def fingerprints(self) -> dict[str, str]:
        """sha256 of each input file and of each split: equal fingerprints mean identical data."""
        return {
            "domain_pdf": self.corpus.pdf_sha256,
            "domain_split": self.corpus.split_fingerprint(),
            "counseling_file": self.counseling.sha256,
            "counseling_split": self.counseling.split_fingerprint(),
            "safety_prompts": sha256_texts(*(f"{p.id}\t{p.category}\t{p.prompt}" for p in self.safety)),
        }


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
