"""Safety prompts in three categories, from our own JSONL set or XSTest / Do-Not-Answer CSV files.

Categories:
- `harmful`: requests a counseling assistant must refuse (lethal doses, hiding self-harm, ...).
- `crisis`: first-person disclosures of suicidal thoughts, self-harm or acute danger; the answer must
  point to crisis help, not merely refuse.
- `benign`: questions that must be answered, including look-alikes of harmful ones (over-refusal probes).

Formats (`data.safety.sources[].format`):
- `harness`: JSON Lines, one object per line:
  `{"id": "crisis-03", "category": "crisis", "prompt": "...", "note": "optional free text"}`;
  `id` must be unique in the file. `harness/sample_data/safety_prompts.jsonl` is the shipped set.
- `xstest`: XSTest CSV with columns `id, prompt, type, label`; label `safe` -> benign, `unsafe` -> harmful.
- `do_not_answer`: Do-Not-Answer CSV with columns `id, types_of_harm, specific_harms, question`;
  types_of_harm "Mental Health or Overreliance Crisis" -> crisis, every other row -> harmful.

Every id is prefixed with its file's stem (`xstest_prompts:12`) so ids stay unique across sources.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, get_args

from harness.run.config import SafetyDataConfig, SafetySource
from harness.core.errors import HarnessError
from harness.core.jsonl import read_jsonl_objects

Category = Literal["harmful", "crisis", "benign"]
CATEGORIES: tuple[str, ...] = get_args(Category)
DO_NOT_ANSWER_CRISIS = "Mental Health or Overreliance Crisis"
_XSTEST_LABELS = {"safe": "benign", "unsafe": "harmful"}


@dataclass(frozen=True)
class SafetyPrompt:
    id: str
    category: Category
    prompt: str
    source: str
    """The file name the prompt came from."""
    note: str = ""


def _read_csv(path: Path, required: list[str], fmt: str) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            found = reader.fieldnames or []
            missing = [name for name in required if name not in found]
            if missing:
                raise HarnessError(
                    f"{path}: column(s) {', '.join(missing)} not found for format {fmt} "
                    f"(columns: {', '.join(found) or '(none)'}); fix the file or the source's `format`"
                )
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise HarnessError(f"{path}: cannot be read as CSV ({exc}); fix or re-export the file") from exc


def _read_harness(path: Path) -> list[SafetyPrompt]:
    prompts: list[SafetyPrompt] = []
    for number, row in read_jsonl_objects(path):
        if not all(isinstance(row.get(key), str) and row[key].strip() for key in ("id", "category", "prompt")):
            raise HarnessError(f'{path}:{number}: expected {{"id", "category", "prompt"}} with non-empty text')
        if row["category"] not in CATEGORIES:
            raise HarnessError(f"{path}:{number}: category {row['category']!r} is not one of {', '.join(CATEGORIES)}")
        prompts.append(SafetyPrompt(row["id"], row["category"], row["prompt"].strip(), path.name, str(row.get("note", ""))))
    return prompts


def _read_xstest(path: Path) -> list[SafetyPrompt]:
    prompts: list[SafetyPrompt] = []
    for number, row in enumerate(_read_csv(path, ["id", "prompt", "type", "label"], "xstest"), 2):
        category = _XSTEST_LABELS.get(row["label"].strip())
        if category is None:
            raise HarnessError(f"{path}: row {number} has label {row['label']!r}; XSTest labels are `safe` or `unsafe`")
        prompts.append(SafetyPrompt(row["id"].strip(), category, row["prompt"].strip(), path.name, row["type"].strip()))
    return prompts


def _read_do_not_answer(path: Path) -> list[SafetyPrompt]:
    rows = _read_csv(path, ["id", "types_of_harm", "specific_harms", "question"], "do_not_answer")
    return [
        SafetyPrompt(
            row["id"].strip(),
            "crisis" if row["types_of_harm"].strip() == DO_NOT_ANSWER_CRISIS else "harmful",
            row["question"].strip(),
            path.name,
            f"{row['types_of_harm'].strip()}: {row['specific_harms'].split(':')[0].strip()}",
        )
        for row in rows
    ]


_READERS: dict[str, Callable[[Path], list[SafetyPrompt]]] = {
    "harness": _read_harness,
    "xstest": _read_xstest,
    "do_not_answer": _read_do_not_answer,
}


def _load_source(source: SafetySource) -> list[SafetyPrompt]:
    path = Path(source.path)
    if not path.is_file():
        raise HarnessError(f"{path}: safety prompt file not found; fix data.safety.sources[].path")
    prompts = _READERS[source.format](path)
    ids = Counter(prompt.id for prompt in prompts)
    repeated = [prompt_id for prompt_id, count in ids.items() if count > 1]
    if repeated:
        raise HarnessError(f"{path}: id {repeated[0]!r} appears {ids[repeated[0]]} times; ids must be unique in a file")
    kept: list[SafetyPrompt] = []
    per_category: Counter[str] = Counter()
    for prompt in prompts:
        if not prompt.prompt or (source.categories and prompt.category not in source.categories):
            continue
        if source.limit is not None and per_category[prompt.category] >= source.limit:
            continue
        per_category[prompt.category] += 1
        kept.append(SafetyPrompt(f"{path.stem}:{prompt.id}", prompt.category, prompt.prompt, prompt.source, prompt.note))
    return kept


def load_safety_prompts(cfg: SafetyDataConfig) -> list[SafetyPrompt]:
    """All prompts of all sources, in file order, after each source's category filter and per-category limit."""
    prompts: list[SafetyPrompt] = []
    seen: dict[str, Path] = {}
    for source in cfg.sources:
        for prompt in _load_source(source):
            if prompt.id in seen:
                raise HarnessError(
                    f"{source.path}: prompt id {prompt.id!r} also comes from {seen[prompt.id]}; "
                    "list each file once in data.safety.sources or rename one of them"
                )
            seen[prompt.id] = Path(source.path)
            prompts.append(prompt)
    if not prompts:
        raise HarnessError("data.safety.sources: no prompts left after the category filters; widen `categories` or add a source")
    return prompts


def category_counts(prompts: list[SafetyPrompt]) -> dict[str, int]:
    """{category: number of prompts} for every category, zeros included."""
    counts = Counter(prompt.category for prompt in prompts)
    return {category: counts.get(category, 0) for category in CATEGORIES}
