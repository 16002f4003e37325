"""Counseling conversations: load any tabular source, deduplicate, and split by question.

The split groups rows by question: counsel-chat answers most questions several times, and a random
row split would put the same question on both sides, so the "held-out" responses would be
memorised prompts. The question key is the prompt's words, case-folded, punctuation ignored. Where the
source has its own question ids (`id_column`), rows sharing an id are grouped too: counsel-chat reuses
some ids for two different texts and files some identical texts under two ids, so neither alone is enough.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.run.config import CounselingDataConfig
from harness.core.errors import HarnessError
from harness.core.jsonl import not_utf8, read_jsonl_objects
from harness.core.fingerprint import sha256_file, sha256_texts

FILE_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")
MAX_FIELD_CHARS = 20_000
"""Longest prompt or response kept; longer ones are cut to this and counted in `rows_capped`. Far beyond any
training window, so only runaway cells (a whole scraped page in one field) are affected, and one such cell
cannot blow up tokenization or generation time."""
_PRESET_HINT = (
    "set data.counseling.preset (amod: Context/Response; counsel_chat: questionText/answerText) "
    "or data.counseling.prompt_column and data.counseling.response_column"
)


@dataclass(frozen=True)
class Conversation:
    id: str
    question_id: str
    """Shared by every answer to the same question text (a hash of `question_key`)."""
    prompt: str
    response: str
    source_question_id: str = ""
    """The source's own question id (`id_column`); empty where the source has none."""


@dataclass
class CounselingData:
    source: str
    sha256: str
    """sha256 of the file's bytes (of the loaded rows, for a hub dataset)."""
    rows_raw: int
    distinct_questions_raw: int
    """Distinct question keys among the raw rows, before deduplication."""
    distinct_question_ids_raw: int | None
    """Distinct values of the source's id column among the raw rows; None when it has no id column."""
    rows_after_dedup: int
    rows_capped: int
    """Rows whose prompt or response was longer than MAX_FIELD_CHARS and was cut to it."""
    train: list[Conversation]
    test: list[Conversation]

    def split_fingerprint(self) -> str:
        """sha256 of the exact train and test rows, in order."""
        rows = [[[c.prompt, c.response] for c in part] for part in (self.train, self.test)]
        return sha256_texts(*(json.dumps(part, ensure_ascii=False) for part in rows))


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def question_key(text: str) -> str:
    """What makes two prompts the same question: their words, case-folded, punctuation and spacing ignored."""
    return " ".join(re.findall(r"\w+", text.casefold()))


def question_id(prompt: str) -> str:
    return sha256_texts(question_key(prompt))[:12]


def build_prompt(text: str, title: str = "") -> str:
    """The question text, with its title in front when there is one and the text does not already start with it."""
    text, title = text.strip(), title.strip()
    if not title or question_key(text).startswith(question_key(title)):
        return text
    return f"{title}\n\n{text}" if text else title


def deduplicate(conversations: list[Conversation]) -> list[Conversation]:
    """Keep the first of each (prompt, response) pair that is identical up to whitespace."""
    seen: set[tuple[str, str]] = set()
    kept: list[Conversation] = []
    for conv in conversations:
        key = (normalize_whitespace(conv.prompt), normalize_whitespace(conv.response))
        if key not in seen:
            seen.add(key)
            kept.append(conv)
    return kept


def question_groups(conversations: list[Conversation]) -> dict[str, str]:
    """question_id -> its group, named by the group's smallest question_id.

    Two questions are in one group when they share a text or a source question id, directly or through
    other questions (union-find over both links); without source ids every question is its own group.
    """
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for conv in conversations:
        text_root = root(f"text:{conv.question_id}")
        if conv.source_question_id:
            parent[root(f"id:{conv.source_question_id}")] = text_root
    members: dict[str, list[str]] = {}
    for qid in {conv.question_id for conv in conversations}:
        members.setdefault(root(f"text:{qid}"), []).append(qid)
    return {qid: min(group) for group in members.values() for qid in group}


def group_split_by_question(
    conversations: list[Conversation], test_fraction: float, seed: int, group_of: dict[str, str] | None = None
) -> tuple[list[Conversation], list[Conversation]]:
    """(train, test) with `test_fraction` of the question groups, chosen by a seeded shuffle, in test.

    `group_of` maps question_id -> group (default: `question_groups(conversations)`); pass the groups of
    the rows before deduplication, whose dropped duplicates may be the only link between two ids.
    Every answer to a question, and to any question sharing its source id, lands on the same side; both
    sides get at least one group; rows keep their input order.
    """
    group_of = question_groups(conversations) if group_of is None else group_of
    groups = sorted(set(group_of.values()))
    if len(groups) < 2:
        raise HarnessError(
            f"counseling data has {len(groups)} distinct question group(s); a train/test split needs at least 2"
        )
    random.Random(seed).shuffle(groups)
    n_test = min(max(round(test_fraction * len(groups)), 1), len(groups) - 1)
    test_groups = set(groups[:n_test])
    train = [conv for conv in conversations if group_of[conv.question_id] not in test_groups]
    test = [conv for conv in conversations if group_of[conv.question_id] in test_groups]
    return train, test


def sample_rows(items: list[Conversation], limit: int | None, seed: int) -> list[Conversation]:
    """At most `limit` items, a seeded sample kept in input order (all of them when `limit` is None)."""
    if limit is None or len(items) <= limit:
        return items
    chosen = sorted(random.Random(seed).sample(range(len(items)), limit))
    return [items[i] for i in chosen]


def chat_messages(conv: Conversation, system_prompt: str, with_response: bool = True) -> list[dict[str, str]]:
    """Role/content messages for a chat template; no system turn when `system_prompt` is empty."""
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": conv.prompt})
    if with_response:
        messages.append({"role": "assistant", "content": conv.response})
    return messages


# ---- reading sources ----


def cell_text(value: Any) -> str:
    """A table cell as text: missing and NaN cells are empty."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{path}: not valid JSON ({exc}); fix the file or convert it to CSV/JSONL") from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise HarnessError(f'{path}: expected a JSON list of objects or {{"data": [...]}}; reshape the file')
    return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl_objects(path)]


def _read_table(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        else:
            frame = pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HarnessError(f"{path}: cannot be read as {path.suffix.lstrip('.')} ({first_line}); fix or re-export the file") from exc
    return frame.to_dict(orient="records")


def _check_utf8(path: Path) -> None:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, data.count(b"\n", 0, exc.start) + 1, data[exc.start]) from None


def _read_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise HarnessError(f"{path}: unsupported file type {suffix or '(none)'}; use one of {', '.join(FILE_SUFFIXES)}")
    if suffix != ".parquet":
        _check_utf8(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".jsonl":
        return _read_jsonl(path)
    return _read_table(path)


def _read_hub(name: str, key: str) -> list[dict[str, Any]]:
    try:
        import datasets

        return list(datasets.load_dataset(name, split="train"))
    except Exception as exc:  # any failure here (no network, unknown id, auth) is the user's to fix
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise HarnessError(
            f"{key} {name!r}: not a local file and the hub dataset could not be loaded ({reason}); "
            f"download the file and set {key} to its local path"
        ) from exc


def read_rows(source: str, key: str) -> tuple[list[dict[str, Any]], str]:
    """(rows, sha256) from a local file, or from the hub when `source` is not a path; `key` is the config key errors name."""
    path = Path(source).expanduser()
    if path.is_file():
        return _read_file(path), sha256_file(path)
    if path.suffix.lower() in FILE_SUFFIXES or source.startswith((".", "/", "~")) or path.exists():
        raise HarnessError(f"{source}: data file not found; set {key} to an existing file")
    rows = _read_hub(source, key)
    return rows, sha256_texts(json.dumps(rows, sort_keys=True, default=str, ensure_ascii=False))


def _check_columns(rows: list[dict[str, Any]], cfg: CounselingDataConfig, source: str) -> dict[str, str | None]:
    columns = cfg.columns()
    found = list(rows[0].keys()) if rows else []
    required = [columns["prompt_column"], columns["response_column"]]
    required += [name for name in (cfg.title_column, cfg.id_column) if name]
    missing = [name for name in required if name not in found]
    if missing:
        shown = ", ".join(map(str, found)) or "(none)"
        raise HarnessError(f"{source}: column(s) {', '.join(map(str, missing))} not found (columns: {shown}); {_PRESET_HINT}")
    for optional in ("title_column", "id_column"):
        if columns[optional] not in found:
            columns[optional] = None
    return columns


def load_counseling(cfg: CounselingDataConfig, seed: int) -> CounselingData:
    """Read `data.counseling.path`, build prompts, drop empty rows and duplicates, split by question, cap."""
    rows, digest = read_rows(cfg.path, "data.counseling.path")
    if not rows:
        raise HarnessError(f"{cfg.path}: no rows; point data.counseling.path at a file with conversations")
    columns = _check_columns(rows, cfg, cfg.path)
    id_column = columns["id_column"]
    conversations: list[Conversation] = []
    rows_capped = 0
    for row in rows:
        title = cell_text(row.get(columns["title_column"])) if columns["title_column"] else ""
        prompt = build_prompt(cell_text(row.get(columns["prompt_column"])), title)
        response = cell_text(row.get(columns["response_column"])).strip()
        source_id = cell_text(row.get(id_column)).strip() if id_column else ""
        if prompt and response:
            if max(len(prompt), len(response)) > MAX_FIELD_CHARS:
                rows_capped += 1
                prompt, response = prompt[:MAX_FIELD_CHARS], response[:MAX_FIELD_CHARS]
            conv_id = sha256_texts(normalize_whitespace(prompt), normalize_whitespace(response))[:12]
            conversations.append(Conversation(conv_id, question_id(prompt), prompt, response, source_id))
    if not conversations:
        raise HarnessError(
            f"{cfg.path}: every row has an empty prompt or response; check the column mapping ({_PRESET_HINT})"
        )
    distinct_questions = len({conv.question_id for conv in conversations})
    distinct_ids = len({conv.source_question_id for conv in conversations} - {""}) if id_column else None
    unique = deduplicate(conversations)
    train, test = group_split_by_question(unique, cfg.test_fraction, seed, question_groups(conversations))
    return CounselingData(
        source=cfg.path,
        sha256=digest,
        rows_raw=len(rows),
        distinct_questions_raw=distinct_questions,
        distinct_question_ids_raw=distinct_ids,
        rows_after_dedup=len(unique),
        rows_capped=rows_capped,
        train=sample_rows(train, cfg.max_train_examples, seed),
        test=sample_rows(test, cfg.max_test_examples, seed),
    )
