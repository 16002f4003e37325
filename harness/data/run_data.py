"""Every dataset a run needs, loaded and split once, with fingerprints that key resume and caches."""

from __future__ import annotations

from dataclasses import dataclass

from harness.run.config import HarnessConfig
from harness.data.conversations import CounselingData, load_counseling
from harness.data.corpus import DomainCorpus, load_domain_corpus
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


def load_run_data(config: HarnessConfig) -> RunData:
    return RunData(
        corpus=load_domain_corpus(config.data.domain),
        counseling=load_counseling(config.data.counseling, config.seed),
        safety=load_safety_prompts(config.data.safety),
    )
