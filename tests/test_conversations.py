"""Counseling conversations: readers, prompts, dedup, the group split by question, caps and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.config import CounselingDataConfig
from harness.conversations import (
    Conversation,
    build_prompt,
    chat_messages,
    deduplicate,
    group_split_by_question,
    load_counseling,
    question_id,
    question_key,
    sample_rows,
)
from harness.errors import HarnessError

ROWS = [
    {"Context": f"Question number {i // 2} about feeling {word}?", "Response": f"Answer {i} with care about {word}."}
    for i, word in enumerate(["tired", "tired", "lonely", "lonely", "tense", "flat", "restless", "numb", "stuck", "sad", "low", "wired"])
]


def _config(path: Path | str, **keys) -> CounselingDataConfig:
    return CounselingDataConfig(path=str(path), **keys)


def _conv(prompt: str, response: str) -> Conversation:
    return Conversation(f"{prompt}|{response}", question_id(prompt), prompt, response)


def test_question_key_ignores_case_spacing_and_punctuation():
    assert question_key("How do I  sleep better?") == question_key("how do i sleep better")
    assert question_id("How do I sleep better?") == question_id("HOW do I sleep better!")
    assert question_id("How do I sleep better?") != question_id("How do I sleep?")


def test_build_prompt_prepends_the_title_once():
    assert build_prompt("I cannot sleep.", "Insomnia") == "Insomnia\n\nI cannot sleep."
    assert build_prompt("Insomnia: I cannot sleep.", "Insomnia") == "Insomnia: I cannot sleep."
    assert build_prompt("  I cannot sleep. ", "") == "I cannot sleep."


def test_deduplicate_drops_exact_duplicates_up_to_whitespace():
    rows = [_conv("Why am I sad?", "It is ok."), _conv("Why am I  sad?", "It is ok. "), _conv("Why am I sad?", "Talk to someone.")]
    assert [c.response for c in deduplicate(rows)] == ["It is ok.", "Talk to someone."]


def test_group_split_keeps_each_question_on_one_side_and_is_seeded():
    rows = [_conv(f"Question {q}?", f"Answer {a}") for q in range(30) for a in range(3)]
    train, test = group_split_by_question(rows, 0.2, seed=7)
    assert {c.question_id for c in train}.isdisjoint({c.question_id for c in test})
    assert len({c.question_id for c in test}) == 6
    assert len(train) + len(test) == len(rows)
    again = group_split_by_question(rows, 0.2, seed=7)
    assert again == (train, test)
    assert group_split_by_question(rows, 0.2, seed=8)[1] != test


def test_group_split_needs_two_questions():
    with pytest.raises(HarnessError, match="at least 2"):
        group_split_by_question([_conv("Only?", "a"), _conv("Only?", "b")], 0.5, seed=0)


def test_sample_rows_is_deterministic_and_keeps_order():
    rows = [_conv(f"Q{i}?", "a") for i in range(20)]
    picked = sample_rows(rows, 5, seed=1)
    assert picked == sample_rows(rows, 5, seed=1)
    assert len(picked) == 5 and picked == sorted(picked, key=rows.index)
    assert sample_rows(rows, None, seed=1) == rows


def test_chat_messages_roles():
    conv = _conv("Why am I sad?", "It makes sense.")
    assert [m["role"] for m in chat_messages(conv, "Be kind.")] == ["system", "user", "assistant"]
    assert chat_messages(conv, "Be kind.", with_response=False)[-1] == {"role": "user", "content": "Why am I sad?"}
    assert [m["role"] for m in chat_messages(conv, "")] == ["user", "assistant"]


def test_shipped_sample_dedups_and_splits_by_question(sample_data):
    data = load_counseling(_config(sample_data / "counseling_conversations.jsonl", test_fraction=0.25), seed=0)
    assert data.rows_raw == 40
    assert data.rows_after_dedup == 38
    assert data.distinct_questions_raw == 34
    assert {c.question_id for c in data.train}.isdisjoint({c.question_id for c in data.test})
    assert len(data.train) + len(data.test) == 38
    repeated = {c.question_id for c in data.train + data.test if sum(d.question_id == c.question_id for d in data.train + data.test) > 1}
    assert len(repeated) == 4  # questions answered twice, each kept whole on one side


def test_caps_are_seeded_samples(sample_data):
    cfg = _config(sample_data / "counseling_conversations.jsonl", max_train_examples=5, max_test_examples=2)
    first, second = load_counseling(cfg, seed=3), load_counseling(cfg, seed=3)
    assert len(first.train) == 5 and len(first.test) == 2
    assert first.train == second.train and first.split_fingerprint() == second.split_fingerprint()
    assert load_counseling(cfg, seed=4).split_fingerprint() != first.split_fingerprint()


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_every_file_format_reads_the_same_rows(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    frame = pd.DataFrame(ROWS)
    if suffix == ".csv":
        frame.to_csv(path, index=False, encoding="utf-8-sig")  # with a BOM
    elif suffix == ".json":
        path.write_text(json.dumps({"data": ROWS}))
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(row) for row in ROWS) + "\n\n")
    else:
        frame.to_parquet(path)
    data = load_counseling(_config(path, test_fraction=0.3), seed=0)
    assert data.rows_raw == 12 and data.distinct_questions_raw == 10
    assert sorted(c.response for c in data.train + data.test) == sorted(row["Response"] for row in ROWS)


def test_csv_with_embedded_newlines_and_titles(tmp_path):
    path = tmp_path / "chat.csv"
    pd.DataFrame(
        {
            "questionTitle": ["Cannot sleep", "Cannot sleep", "Lonely"],
            "questionText": ["I lie awake.\nEvery night.", "I lie awake.\nEvery night.", "I feel alone."],
            "answerText": ["Try a routine,\nand see a doctor.", "Keep a diary.", "Reach out to one friend."],
        }
    ).to_csv(path, index=False)
    data = load_counseling(_config(path, preset="counsel_chat", test_fraction=0.5), seed=0)
    prompts = {c.prompt for c in data.train + data.test}
    assert prompts == {"Cannot sleep\n\nI lie awake.\nEvery night.", "Lonely\n\nI feel alone."}
    assert data.distinct_questions_raw == 2


def test_json_list_of_objects(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(ROWS))
    assert load_counseling(_config(path), seed=0).rows_raw == 12


def test_missing_file(tmp_path):
    with pytest.raises(HarnessError, match="not found"):
        load_counseling(_config(tmp_path / "absent.csv"), seed=0)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("Context\tResponse\n")
    with pytest.raises(HarnessError, match="unsupported file type .txt"):
        load_counseling(_config(path), seed=0)


def test_csv_missing_mapped_columns_names_what_it_found(tmp_path):
    path = tmp_path / "chat.csv"
    pd.DataFrame({"question": ["a?"], "answer": ["b."]}).to_csv(path, index=False)
    with pytest.raises(HarnessError, match=r"Context, Response not found \(columns: question, answer\).*preset"):
        load_counseling(_config(path), seed=0)


def test_explicit_title_column_must_exist(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in ROWS))
    with pytest.raises(HarnessError, match="Title not found"):
        load_counseling(_config(path, title_column="Title"), seed=0)


def test_empty_after_filtering(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps({"Context": c, "Response": r}) for c, r in [("", "x"), ("q?", "  "), ("  ", "")]))
    with pytest.raises(HarnessError, match="empty prompt or response"):
        load_counseling(_config(path), seed=0)


def test_invalid_jsonl_line_is_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(HarnessError, match=r"rows.jsonl:2"):
        load_counseling(_config(path), seed=0)


def test_hub_id_without_network_asks_for_a_local_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(HarnessError, match="download the file and set data.counseling.path"):
        load_counseling(_config("someone/no-such-counseling-dataset"), seed=0)


def test_counsel_chat_counts(shared_data):
    data = load_counseling(_config(shared_data / "counseling" / "counsel_chat.csv", preset="counsel_chat"), seed=0)
    frame = pd.read_csv(shared_data / "counseling" / "counsel_chat.csv")
    assert data.rows_raw == len(frame) == 2129
    expected_questions = (frame["questionTitle"].fillna("") + " " + frame["questionText"].fillna("")).map(question_key).nunique()
    assert data.distinct_questions_raw == expected_questions
    assert frame["questionID"].nunique() == 815  # the upstream id column; it merges and splits some questions
    assert data.rows_after_dedup < data.rows_raw
    train_q, test_q = {c.question_id for c in data.train}, {c.question_id for c in data.test}
    assert train_q.isdisjoint(test_q)
    assert {question_key(c.prompt) for c in data.train}.isdisjoint({question_key(c.prompt) for c in data.test})
    assert len(test_q) == round(0.1 * data.distinct_questions_raw)
