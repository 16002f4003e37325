"""`data inspect`: the leakage measures as pure functions, and the full report on small configs."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from harness.run.config import load_config
from harness.data.conversations import Conversation, question_id
from harness.data.corpus import token_windows
from harness.data.inspection import Leakage, RepeatedPassage, inspect_data, ngram_overlap, question_overlap, repeated_passages, word_shingles

TEXT_A = "the quick brown fox jumps over the lazy dog while the cat sleeps on a warm mat by the door"
TEXT_B = "a completely different passage about sleep routines daylight walks and steady breathing before bed each night"


def _conv(prompt: str) -> Conversation:
    return Conversation(prompt, question_id(prompt), prompt, "answer")


def test_word_shingles_normalise_case_and_punctuation():
    assert word_shingles("Hello, World! Again.", 2) == {("hello", "world"), ("world", "again")}
    assert word_shingles("too short", 13) == set()


def test_ngram_overlap_bounds():
    assert ngram_overlap(TEXT_A, TEXT_B) == 0.0
    assert ngram_overlap(TEXT_A, TEXT_A.upper().replace(" ", ",  ")) == 1.0
    assert ngram_overlap(TEXT_A, "only a few words") == 0.0


def test_ngram_overlap_is_the_share_of_heldout_shingles():
    heldout = TEXT_A + " " + TEXT_B
    shared = len(word_shingles(TEXT_A))
    expected = shared / len(word_shingles(heldout))
    assert ngram_overlap(TEXT_A, heldout) == pytest.approx(expected)
    assert 0 < expected < 1


def test_question_overlap_counts_distinct_test_questions():
    train = [_conv("How do I sleep?"), _conv("Why am I sad?")]
    test = [_conv("how do I sleep"), _conv("how do I sleep"), _conv("What is panic?")]
    assert question_overlap(train, test) == 0.5
    assert question_overlap(train, []) == 0.0


def test_leakage_failures_name_each_measure_above_its_threshold(write_config):
    data = load_config(write_config(domain={"max_ngram_overlap": 0.1}, counseling={"max_question_overlap": 0.0})).data
    assert Leakage(0.1, 13, 0.0).failures(data) == []
    failures = Leakage(0.25, 13, 0.05).failures(data)
    assert len(failures) == 2
    assert failures[0].startswith("domain: 25.0%") and "max_ngram_overlap" in failures[0]
    assert failures[1].startswith("counseling: 5.0%") and "max_question_overlap" in failures[1]


def test_inspect_sample_config(write_config, tiny_tokenizer):
    config = load_config(write_config(domain={"heldout_fraction": 0.2, "max_length": 64, "stride": 48}))
    inspection = inspect_data(config, tiny_tokenizer)
    assert json.loads(inspection.model_dump_json())["schema_version"] == 2
    report = inspection.facts()
    domain, counseling = report["domain"], report["counseling"]
    assert domain["sections"] == domain["train_sections"] + domain["heldout_sections"]
    assert domain["heldout_sections"] >= 1 and domain["pages"] == 5
    splits = [s["split"] for s in domain["section_list"]]
    assert splits == ["train"] * domain["train_sections"] + ["heldout"] * domain["heldout_sections"]
    ids = [0] * domain["train_tokens"]
    assert domain["train_windows"] == len(token_windows(ids, 64, 48))
    assert domain["heldout_tokens"] > 0 and domain["heldout_ngram_overlap"] == 0.0
    assert counseling["rows_raw"] == 40 and counseling["rows_after_dedup"] == 38
    assert counseling["train_rows"] + counseling["test_rows"] == 38
    assert counseling["train_questions"] + counseling["test_questions"] == counseling["distinct_questions_raw"]
    assert counseling["distinct_question_ids_raw"] is None  # the amod preset has no id column
    assert counseling["question_overlap"] == 0.0 and counseling["max_question_overlap"] == 0.0
    assert domain["max_ngram_overlap"] == config.data.domain.max_ngram_overlap
    assert sum(report["safety"]["counts"].values()) == report["safety"]["total"]
    assert report["failures"] == []


def test_inspect_flags_a_document_that_repeats_itself(tmp_path, make_pdf, write_config, tiny_tokenizer):
    passage = (
        "Sleep improves when the wake-up time stays the same every day and the evening light is kept low. "
        "A short walk in morning daylight helps the body clock settle into a steady rhythm over a week or two. "
    )
    other = (
        "Friends can help by listening without rushing to fix things and by checking in again a few days later. "
        "Small kind messages matter more than perfect words when someone is having a hard time at home. "
    )
    pages = [f"# Rest\n\n{passage * 3}", f"# Friends\n\n{other * 3}", f"# Rest Again\n\n{passage * 3}"]
    pdf = make_pdf(tmp_path, pages)
    config = load_config(write_config(domain={"documents": [str(pdf)], "heldout_fraction": 0.34}))
    report = inspect_data(config, tiny_tokenizer)
    assert report.domain.heldout_ngram_overlap > 0.5
    assert len(report.failures) == 1 and report.failures[0].startswith("domain:")
    top = report.domain.repeated_passages[0]
    assert f'; most repeated: "{top.text}" ({top.words} words; {top.train_count}x in train' in report.failures[0]
    assert top.text.removesuffix(" …") in " ".join(re.findall(r"[^\W_]+", passage.casefold()))


HEADER = "Clinic Leaflet Series Number Four Revised Edition Printed For Patients And Families In The Region"
COPIED = " ".join(f"copied{i}" for i in range(40))


def test_repeated_passages_tell_a_running_header_from_a_copied_page():
    pages = [f"{HEADER} {' '.join(f'train{p}w{i}' for i in range(30))}" for p in range(6)]
    train = " ".join(pages) + f" {COPIED}"
    heldout = f"{HEADER} fresh words one two three {COPIED} {HEADER} more new words here"
    header, copied = repeated_passages(train, heldout)
    assert header == RepeatedPassage(text=" ".join(HEADER.casefold().split()[:12]) + " …", words=15, train_count=6, heldout_count=2)
    assert (copied.words, copied.train_count, copied.heldout_count) == (40, 1, 1)
    assert copied.describe() == f'"{" ".join(COPIED.split()[:12])} …" (40 words; 1x in train, 1x held out)'
    assert repeated_passages(train, "nothing here is shared with the training text at all, not one run of words") == []


def test_inspect_reports_every_document_and_the_totals(tmp_path, make_pdf, write_config, tiny_tokenizer):
    make_pdf(tmp_path, [f"# Rest\n\n{f'{TEXT_A}. ' * 8}", f"# Friends\n\n{f'{TEXT_B}. ' * 8}"], name="guide.pdf")
    (tmp_path / "notes.txt").write_text("Evening Routines\n\n" + " ".join(f"Step {i} of a calm evening is written here." for i in range(60)))
    config = load_config(write_config(domain={"documents": [str(tmp_path)], "heldout_fraction": 0.3}))
    domain = inspect_data(config, tiny_tokenizer).domain
    documents = domain.documents
    assert [(d.document, d.kind, d.pages, d.split) for d in documents] == [
        ("guide.pdf", "pdf", 2, "train+heldout"), ("notes.txt", "text", 1, "train+heldout"),
    ]
    assert domain.document_count == 2 and domain.heldout_by == "sections" and domain.pdf is None
    for total in ("pages", "chars", "sections"):
        assert getattr(domain, total) == sum(getattr(d, total) for d in documents)
    assert all(d.train_tokens > 0 and d.heldout_tokens > 0 for d in documents)
    assert abs(domain.train_tokens - sum(d.train_tokens for d in documents)) <= len(documents), "joined once per split"
    assert {s.document for s in domain.section_list if s.split == "heldout"} == {"guide.pdf", "notes.txt"}


def test_inspect_counsel_chat_reports_ids_and_texts(shared_data, write_config, tiny_tokenizer):
    csv = shared_data / "counseling" / "counsel_chat.csv"
    config = load_config(write_config(counseling={"path": str(csv), "preset": "counsel_chat"}))
    counseling = inspect_data(config, tiny_tokenizer).facts()["counseling"]
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert counseling["rows_raw"] == len(frame)
    assert counseling["distinct_question_ids_raw"] == frame["questionID"].nunique() == 815
    assert counseling["distinct_questions_raw"] > counseling["distinct_question_ids_raw"]
    assert counseling["question_overlap"] == 0.0
