"""Counseling conversations: readers, prompts, dedup, the group split by question, caps and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.run.config import CounselingDataConfig
from harness.data.conversations import (
    Conversation,
    build_prompt,
    chat_messages,
    deduplicate,
    group_split_by_question,
    load_counseling,
    question_groups,
    question_id,
    question_key,
    sample_rows,
)
from harness.core.errors import HarnessError

ROWS = [
    {"Context": f"Question number {i // 2} about feeling {word}?", "Response": f"Answer {i} with care about {word}."}
    for i, word in enumerate(["tired", "tired", "lonely", "lonely", "tense", "flat", "restless", "numb", "stuck", "sad", "low", "wired"])
]


def _config(path: Path | str, **keys) -> CounselingDataConfig:
    return CounselingDataConfig(path=str(path), **keys)


def _conv(prompt: str, response: str, source_id: str = "") -> Conversation:
    return Conversation(f"{prompt}|{response}", question_id(prompt), prompt, response, source_id)


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


def test_question_groups_link_texts_through_shared_source_ids():
    rows = [
        _conv("Why am I sad?", "a", "1"),
        _conv("Why can I not sleep?", "b", "1"),  # id 1 reused for a second text
        _conv("Why can I not sleep?", "c", "2"),  # the same text filed again under id 2
        _conv("What is panic?", "d", "2"),
        _conv("Is grief normal?", "e", "3"),
        _conv("How do I calm down?", "f"),
    ]
    group_of = question_groups(rows)
    linked = {question_id(p) for p in ("Why am I sad?", "Why can I not sleep?", "What is panic?")}
    assert {group_of[q] for q in linked} == {min(linked)}
    assert len(set(group_of.values())) == 3
    assert question_groups([_conv(r.prompt, r.response) for r in rows]) == {r.question_id: r.question_id for r in rows}


def test_group_split_keeps_shared_texts_and_shared_ids_on_one_side():
    rows = [_conv(f"Question {q}?", f"Answer {q}", f"id{q // 2}") for q in range(40)]
    rows += [_conv(f"Question {q}?", f"Second answer {q}", f"id{100 + q}") for q in range(0, 40, 4)]
    for seed in range(5):
        train, test = group_split_by_question(rows, 0.25, seed)
        assert {c.question_id for c in train}.isdisjoint({c.question_id for c in test})
        assert {c.source_question_id for c in train}.isdisjoint({c.source_question_id for c in test})
        assert len({c.source_question_id for c in test} & {f"id{i}" for i in range(20)}) == 5  # 20 groups, a quarter


def test_split_uses_links_from_rows_that_dedup_drops(tmp_path):
    rows = [
        {"questionText": "How do I stop worrying?", "answerText": "Write it down.", "questionID": "7"},
        {"questionText": "How do I stop worrying?", "answerText": "Write it down.", "questionID": "8"},  # dropped
        {"questionText": "Why do I worry at night?", "answerText": "Keep a routine.", "questionID": "8"},
    ]
    rows += [{"questionText": f"Filler question {i}?", "answerText": f"Answer {i}.", "questionID": f"f{i}"} for i in range(6)]
    path = tmp_path / "chat.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    for seed in range(8):
        data = load_counseling(_config(path, preset="counsel_chat", test_fraction=0.5), seed)
        assert data.rows_after_dedup == 8 and data.distinct_question_ids_raw == 8
        sides = {c.prompt: side for side, part in (("train", data.train), ("test", data.test)) for c in part}
        assert sides["How do I stop worrying?"] == sides["Why do I worry at night?"]


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
    assert data.distinct_question_ids_raw is None  # the preset's questionID column is absent from this file


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


def test_explicit_id_column_must_exist(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in ROWS))
    with pytest.raises(HarnessError, match="QuestionId not found"):
        load_counseling(_config(path, id_column="QuestionId"), seed=0)


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


def _components(frame: pd.DataFrame, keys: pd.Series) -> pd.Series:
    """Per row, the smallest questionID reachable through shared question texts or shared ids."""
    label = frame["questionID"]
    while True:
        spread = label.groupby(keys).transform("min").groupby(frame["questionID"]).transform("min")
        if spread.equals(label):
            return label
        label = spread


def test_counsel_chat_counts(shared_data):
    path = shared_data / "counseling" / "counsel_chat.csv"
    data = load_counseling(_config(path, preset="counsel_chat"), seed=0)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    keys = (frame["questionTitle"] + " " + frame["questionText"]).map(question_key)
    assert data.rows_raw == len(frame) == 2129
    assert data.distinct_question_ids_raw == frame["questionID"].nunique() == 815
    assert data.distinct_questions_raw == keys.nunique()
    assert data.rows_after_dedup < data.rows_raw
    assert {question_key(c.prompt) for c in data.train}.isdisjoint({question_key(c.prompt) for c in data.test})
    assert {c.source_question_id for c in data.train}.isdisjoint({c.source_question_id for c in data.test})

    frame["component"] = _components(frame, keys)
    frame["answer"], frame["text_key"] = frame["answerText"].str.strip(), frame["questionText"].map(question_key)
    rows_by_answer = {answer: rows for answer, rows in frame.groupby("answer")}

    def file_rows(conv: Conversation) -> pd.DataFrame:
        rows = rows_by_answer[conv.response]
        return rows[[question_key(conv.prompt).endswith(key) for key in rows["text_key"]]]

    train_rows = pd.concat([file_rows(c) for c in data.train])
    test_rows = pd.concat([file_rows(c) for c in data.test])
    assert set(train_rows["questionID"]).isdisjoint(test_rows["questionID"])  # ids as the file has them, duplicates too
    assert set(train_rows["component"]).isdisjoint(test_rows["component"])
    assert test_rows["component"].nunique() == round(0.1 * frame["component"].nunique())
