"""Held-out perplexity per PDF section, regrouped from the perplexity eval's per-chunk sample records.

The perplexity eval logs one record per chunk of scored tokens (its bootstrap unit), each with the
chunk's summed negative log-likelihood in nats as its `heldout_perplexity` value, its token count
as the weight, and its section in `extra.section` / `extra.title` (and its file in `extra.document`,
named before the title when the held-out text comes from several documents). A section's perplexity is
exp(sum nll / sum tokens) over its chunks: the headline's token-weighted definition, restricted to
one section. Records without `extra.section` count as a section of their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.run.results import SampleRecord

METRIC = "heldout_perplexity"


@dataclass(frozen=True)
class SectionRow:
    key: str
    title: str
    tokens: int
    perplexity: dict[str, float]
    """checkpoint -> perplexity; a checkpoint without this section is absent."""


def section_key(record: SampleRecord) -> str:
    section = record.extra.get("section")
    return str(section) if section is not None else record.id


def section_perplexity(records: list[SampleRecord]) -> float | None:
    """exp(sum nll_nats / sum tokens) over the records; None when they carry no scored tokens."""
    nll = math.fsum(r.values[METRIC] for r in records if METRIC in r.values and r.weights.get(METRIC))
    tokens = math.fsum(r.weights[METRIC] for r in records if METRIC in r.values and r.weights.get(METRIC))
    if tokens <= 0:
        return None
    try:
        return math.exp(nll / tokens)
    except OverflowError:
        return math.inf


def section_rows(perplexity_samples: dict[str, list[SampleRecord]]) -> list[SectionRow]:
    """One row per held-out section, in the order the sections first appear in the logs."""
    order: list[str] = []
    titles: dict[str, str] = {}
    grouped: dict[str, dict[str, list[SampleRecord]]] = {}
    documents = {r.extra.get("document") for records in perplexity_samples.values() for r in records}
    for checkpoint, records in perplexity_samples.items():
        for record in records:
            key = section_key(record)
            if key not in titles:
                order.append(key)
                title = str(record.extra.get("title") or key)
                titles[key] = f"{record.extra['document']}: {title}" if len(documents) > 1 and record.extra.get("document") else title
            grouped.setdefault(key, {}).setdefault(checkpoint, []).append(record)
    rows = []
    for key in order:
        values = {c: v for c, recs in grouped[key].items() if (v := section_perplexity(recs)) is not None}
        first = next(iter(grouped[key].values()))
        rows.append(SectionRow(key, titles[key], int(math.fsum(r.weights.get(METRIC, 0.0) for r in first)), values))
    return rows
