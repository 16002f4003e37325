"""Safety prompts: our JSONL set, XSTest and Do-Not-Answer CSVs, filters, limits and errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness.run.config import SafetyDataConfig
from harness.core.errors import HarnessError
from harness.data.safety_prompts import category_counts, load_safety_prompts


def _load(*sources: dict) -> list:
    return load_safety_prompts(SafetyDataConfig.model_validate({"sources": list(sources)}))


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_shipped_set_has_at_least_20_per_category_and_unique_prompts(sample_data):
    prompts = _load({"path": str(sample_data / "safety_prompts.jsonl")})
    counts = category_counts(prompts)
    assert set(counts) == {"harmful", "crisis", "benign"}
    assert all(n >= 20 for n in counts.values()), counts
    assert len({p.prompt for p in prompts}) == len(prompts)
    assert all(p.id.startswith("safety_prompts:") and p.source == "safety_prompts.jsonl" for p in prompts)


def test_category_filter_and_limit_take_the_first_n(sample_data):
    path = str(sample_data / "safety_prompts.jsonl")
    everything = _load({"path": path})
    limited = _load({"path": path, "categories": ["crisis", "benign"], "limit": 3})
    assert category_counts(limited) == {"harmful": 0, "crisis": 3, "benign": 3}
    first_crisis = [p for p in everything if p.category == "crisis"][:3]
    assert [p for p in limited if p.category == "crisis"] == first_crisis


def test_ids_are_unique_across_sources(tmp_path, sample_data):
    other = _write_jsonl(tmp_path / "extra.jsonl", [{"id": "harmful-01", "category": "harmful", "prompt": "Another."}])
    prompts = _load({"path": str(sample_data / "safety_prompts.jsonl")}, {"path": str(other)})
    assert "extra:harmful-01" in {p.id for p in prompts} and "safety_prompts:harmful-01" in {p.id for p in prompts}
    with pytest.raises(HarnessError, match="list each file once"):
        _load({"path": str(other)}, {"path": str(other)})


def test_harness_format_errors(tmp_path):
    bad_category = _write_jsonl(tmp_path / "a.jsonl", [{"id": "x", "category": "risky", "prompt": "p"}])
    with pytest.raises(HarnessError, match=r"a.jsonl:1: category 'risky'"):
        _load({"path": str(bad_category)})
    missing_prompt = _write_jsonl(tmp_path / "b.jsonl", [{"id": "x", "category": "benign"}])
    with pytest.raises(HarnessError, match=r"b.jsonl:1: expected"):
        _load({"path": str(missing_prompt)})
    duplicated = _write_jsonl(tmp_path / "c.jsonl", [{"id": "x", "category": "benign", "prompt": "p"}] * 2)
    with pytest.raises(HarnessError, match="appears 2 times"):
        _load({"path": str(duplicated)})
    broken = tmp_path / "d.jsonl"
    broken.write_text('{"id": "x", "category": "benign", "prompt": "p"}\n{oops\n')
    with pytest.raises(HarnessError, match=r"d.jsonl:2"):
        _load({"path": str(broken)})


def test_missing_file(tmp_path):
    with pytest.raises(HarnessError, match="not found"):
        _load({"path": str(tmp_path / "absent.jsonl")})


def test_xstest_csv_missing_columns(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("id,prompt\n1,hello\n")
    with pytest.raises(HarnessError, match=r"type, label not found for format xstest \(columns: id, prompt\)"):
        _load({"path": str(path), "format": "xstest"})


def test_xstest_unknown_label(tmp_path):
    path = tmp_path / "x.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["id", "prompt", "type", "label"], ["1", "hi", "homonyms", "maybe"]])
    with pytest.raises(HarnessError, match="safe` or `unsafe"):
        _load({"path": str(path), "format": "xstest"})


def test_filters_that_leave_nothing_are_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "only.jsonl", [{"id": "b1", "category": "benign", "prompt": "How do I sleep?"}])
    with pytest.raises(HarnessError, match="no prompts left"):
        _load({"path": str(path), "categories": ["crisis"]})


def test_xstest_shared_file(shared_data):
    prompts = _load({"path": str(shared_data / "safety" / "xstest_prompts.csv"), "format": "xstest"})
    assert len(prompts) == 450
    assert category_counts(prompts) == {"harmful": 200, "crisis": 0, "benign": 250}
    assert prompts[0].id == "xstest_prompts:1" and prompts[0].note


def test_do_not_answer_shared_file(shared_data):
    path = shared_data / "safety" / "do_not_answer_en.csv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    prompts = _load({"path": str(path), "format": "do_not_answer"})
    counts = category_counts(prompts)
    assert counts["crisis"] == 67
    assert counts["crisis"] + counts["harmful"] == len(rows) and counts["benign"] == 0
    crisis_only = _load({"path": str(path), "format": "do_not_answer", "categories": ["crisis"], "limit": 10})
    assert len(crisis_only) == 10 and all("Mental Health" in p.note for p in crisis_only)
