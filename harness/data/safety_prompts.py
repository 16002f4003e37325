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
- `table`: any CSV / JSON / JSON Lines / parquet file or hub dataset id, read like the counseling
  data, through a column mapping: `prompt_column`, optional `context_column` and `id_column` (row
  numbers otherwise), and either one `category` for the file or `category_column` with a
  `category_map`. `harmbench`, `jailbreakbench`, `advbench` and `strongreject` are `table` with the
  mapping of that set's published file (`harness.run.config.SAFETY_TABLE_PRESETS`), so no code is needed.

Every id is prefixed with its file's stem (`xstest_prompts:12`) so ids stay unique across sources.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, get_args

from harness.core.errors import HarnessError
from harness.core.jsonl import read_jsonl_objects
from harness.data.conversations import cell_text, read_rows
from harness.run.config import SafetyCategory, SafetyDataConfig, SafetySource

Category = SafetyCategory
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
CONTEXT_RULE = "\n\n---\n\n"
"""Between a row's context and its prompt, as HarmBench joins a contextual behavior to its context."""


def _table_category(source: SafetySource, row: dict[str, Any], number: int) -> Category:
    mapping = source.table_mapping()
    if mapping["category"]:
        return mapping["category"]  # type: ignore[return-value]
    value = cell_text(row.get(source.category_column)).strip()
    if value not in (source.category_map or {}):
        raise HarnessError(
            f"{source.path}: row {number} has {source.category_column}={value!r}, which category_map does not map; "
            f"add it to data.safety.sources[].category_map"
        )
    return source.category_map[value]  # type: ignore[index]


def _read_table(source: SafetySource) -> list[SafetyPrompt]:
    """Any CSV/JSON/JSONL/parquet file or hub dataset, through the source's column mapping."""
    rows, _ = read_rows(source.path, "data.safety.sources[].path")
    mapping = source.table_mapping()
    found = list(rows[0]) if rows else []
    wanted = {"prompt_column": mapping["prompt_column"], "id_column": mapping["id_column"], "category_column": source.category_column}
    missing = [(key, column) for key, column in wanted.items() if column and column not in found]
    if missing:
        key, column = missing[0]
        raise HarnessError(
            f"{source.path}: column {column!r} not found for format {source.format} (columns: "
            f"{', '.join(map(str, found)) or '(none)'}); set data.safety.sources[].{key} to one of them"
        )
    context_column = mapping["context_column"] if mapping["context_column"] in found else None
    name = Path(source.path).name
    prompts = []
    for number, row in enumerate(rows, 1):
        prompt = cell_text(row.get(mapping["prompt_column"])).strip()
        context = cell_text(row.get(context_column)).strip() if context_column else ""
        row_id = cell_text(row.get(mapping["id_column"])).strip() if mapping["id_column"] else str(number)
        full_prompt = f"{context}{CONTEXT_RULE}{prompt}" if context and prompt else prompt
        prompts.append(SafetyPrompt(row_id, _table_category(source, row, number), full_prompt, name))
    return prompts


def _read_source(source: SafetySource) -> list[SafetyPrompt]:
    if source.format in _READERS:
        path = Path(source.path)
        if not path.is_file():
            raise HarnessError(f"{path}: safety prompt file not found; fix data.safety.sources[].path")
        return _READERS[source.format](path)
    return _read_table(source)


def _load_source(source: SafetySource) -> list[SafetyPrompt]:
    path = Path(source.path)
    prompts = _read_source(source)
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
        files = ", ".join(str(source.path) for source in cfg.sources) or "no files listed"
        if any(source.categories for source in cfg.sources):
            raise HarnessError(f"data.safety.sources ({files}): no prompts left after the category filters; widen `categories` or add a source")
        raise HarnessError(f"data.safety.sources ({files}): the files hold no prompts; add prompts to them or add a source")
    return prompts


def category_counts(prompts: list[SafetyPrompt]) -> dict[str, int]:
    """{category: number of prompts} for every category, zeros included."""
    counts = Counter(prompt.category for prompt in prompts)
    return {category: counts.get(category, 0) for category in CATEGORIES}
