"""Held-out perplexity and bits-per-byte of the domain text, scored with overlapping (strided) windows.

Every token of a held-out section is scored exactly once, from the most context a window of
`max_length` model inputs allows: window i reads up to `max_length` tokens and scores only the tokens
after the previous window's end (the Hugging Face "perplexity of fixed-length models" scheme). With
`stride == max_length` the model inputs are disjoint, which is exactly lm-eval's
`loglikelihood_rolling`, and `scripts/crosscheck_lm_eval.py` checks that the two agree.

The first token of a section has no text before it, so, like lm-eval, it is predicted from one
conditioning token: the tokenizer's BOS, or EOS when there is no BOS. The text itself is tokenized
without special tokens, so that token is never counted and every text token is.

Bootstrap unit: a section is split into chunks of `bootstrap_chunk_tokens` scored tokens, one record
each (id `s{section}w{chunk}`, section and title in `extra`), because a held-out part of a few
sections gives too few units for a confidence interval; the report regroups chunks per section via
`extra`. Chunks only group already-scored tokens: the context each token saw does not depend on them.

Numbers are batch-independent in fp32 and under bf16 autocast, but not for a bitsandbytes 8-bit
model: LLM.int8 picks its fp16 outlier columns over the whole batch, so `batch_size` moves an
8-bit model's perplexity slightly (0.5-3% measured on SmolLM2); compare 8-bit checkpoints at one
batch size.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.evals.context import EvalContext
from harness.evals.registry import EvalOutput, EvalSpec, MetricSpec, register
from harness.core.errors import HarnessError
from harness.run.results import MetricPresentation, SampleRecord

if TYPE_CHECKING:
    from harness.data.corpus import Section


def strided_windows(n_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows `(begin, end, score_from)` over a sequence of `n_tokens` ids whose first id only conditions.

    The model reads ids `[begin, end - 1)` (at most `max_length` of them) and the window scores ids
    `[score_from, end)`, each predicted from everything before it in the window. Every id after the
    first is scored exactly once; after the first window each is seen with at least
    `max_length - stride + 1` ids of context, and the last window is pulled back to a full `max_length`.
    """
    if max_length < 1 or stride < 1:
        raise ValueError(f"max_length and stride must be positive, got {max_length} and {stride}")
    if stride > max_length:
        raise ValueError(f"stride {stride} > max_length {max_length} would score tokens without context")
    windows: list[tuple[int, int, int]] = []
    scored_until = 1
    while scored_until < n_tokens:
        step = max_length if not windows else stride
        end = min(scored_until + step, n_tokens)
        begin = max(0, end - 1 - max_length)
        windows.append((begin, end, scored_until))
        scored_until = end
    return windows


def conditioning_token_id(tokenizer: Any) -> int:
    """The id the first text token is predicted from: BOS, else EOS (lm-eval's `prefix_token_id`)."""
    token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token_id is None:
        raise HarnessError(
            "the tokenizer has neither a BOS nor an EOS token; perplexity needs one to condition the first token on"
        )
    return int(token_id)


def chunk_byte_counts(text: str, token_char_starts: list[int], chunk_size: int) -> list[int]:
    """UTF-8 bytes of `text` covered by each run of `chunk_size` tokens; they sum to the whole text.

    A chunk runs from the first character of its first token to the first character of the next
    chunk's first token (the first chunk from the start of the text, the last to its end).
    """
    cuts = [0] + [token_char_starts[i] for i in range(chunk_size, len(token_char_starts), chunk_size)] + [len(text)]
    byte_cuts: list[int] = []
    for cut in cuts:
        byte_cuts.append(max(len(text[:cut].encode("utf-8")), byte_cuts[-1] if byte_cuts else 0))
    return [b - a for a, b in zip(byte_cuts, byte_cuts[1:], strict=False)]


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def token_nlls(
    model: Any, ids: list[int], *, max_length: int, stride: int, batch_size: int, autocast_bf16: bool = False
) -> list[float]:
    """Negative log-likelihood in nats of `ids[1:]`, each from its strided window; `ids[0]` only conditions.

    All windows of one sequence have the same input length (see `strided_windows`), so a batch needs
    no padding, and only the logits of scored positions are computed (`logits_to_keep`).
    """
    import torch
    import torch.nn.functional as F

    windows = strided_windows(len(ids), max_length, stride)
    device = model.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if autocast_bf16 else contextlib.nullcontext()
    nlls: list[float] = []
    for batch in _batches(windows, batch_size):
        inputs = torch.tensor([ids[begin : end - 1] for begin, end, _ in batch], device=device)
        keep = max(end - score_from for _, end, score_from in batch)
        with torch.inference_mode(), autocast:
            logits = model(input_ids=inputs, use_cache=False, logits_to_keep=keep).logits
        for row, (_, end, score_from) in enumerate(batch):
            scored = logits[row, logits.shape[1] - (end - score_from) :].float()
            targets = torch.tensor(ids[score_from:end], device=device)
            nlls.extend(F.cross_entropy(scored, targets, reduction="none").tolist())
    return nlls


@dataclass(frozen=True)
class ScoredText:
    """Per-token NLLs of one text plus what is needed to cut them into byte-counted chunks."""

    nlls: list[float]
    token_char_starts: list[int] | None
    """Character offset of each token; None for tokenizers without offsets (slow tokenizers)."""
    n_bytes: int


def score_text(
    model: Any, tokenizer: Any, text: str, *, max_length: int, stride: int, batch_size: int, autocast_bf16: bool = False
) -> ScoredText:
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=bool(tokenizer.is_fast))
    ids = [conditioning_token_id(tokenizer)] + list(encoding["input_ids"])
    nlls = token_nlls(model, ids, max_length=max_length, stride=stride, batch_size=batch_size, autocast_bf16=autocast_bf16)
    starts = [start for start, _ in encoding["offset_mapping"]] if tokenizer.is_fast else None
    return ScoredText(nlls=nlls, token_char_starts=starts, n_bytes=len(text.encode("utf-8")))


def section_nll(
    model: Any, tokenizer: Any, text: str, *, max_length: int, stride: int, batch_size: int, autocast_bf16: bool = False
) -> tuple[float, int, int]:
    """(summed NLL in nats, scored tokens, UTF-8 bytes) of one text."""
    scored = score_text(
        model, tokenizer, text, max_length=max_length, stride=stride, batch_size=batch_size, autocast_bf16=autocast_bf16
    )
    return math.fsum(scored.nlls), len(scored.nlls), scored.n_bytes


def _chunk_records(section: Section, scored: ScoredText, chunk_size: int) -> list[SampleRecord]:
    if scored.token_char_starts is None:
        byte_counts = [scored.n_bytes]
        chunk_size = len(scored.nlls)
    else:
        byte_counts = chunk_byte_counts(section.text, scored.token_char_starts, chunk_size)
    records = []
    for j, n_bytes in enumerate(byte_counts):
        chunk = scored.nlls[j * chunk_size : (j + 1) * chunk_size]
        nll = math.fsum(chunk)
        records.append(
            SampleRecord(
                id=f"s{section.index}w{j}",
                eval="perplexity",
                values={"heldout_perplexity": nll, "heldout_bits_per_byte": nll / math.log(2)},
                weights={"heldout_perplexity": float(len(chunk)), "heldout_bits_per_byte": float(n_bytes)},
                extra={
                    "section": section.index, "title": section.title, "document": section.document,
                    "first_page": section.first_page, "chunk": j,
                },
            )
        )
    return records


def run_perplexity(ctx: EvalContext) -> EvalOutput:
    """Score the held-out sections (the first `ctx.limit` of them when a limit is set)."""
    settings = ctx.config.eval.perplexity
    if settings.stride > settings.max_length:
        raise HarnessError(
            f"eval.perplexity.stride ({settings.stride}) is larger than eval.perplexity.max_length ({settings.max_length}); "
            "set stride <= max_length so every token keeps context"
        )
    positions = getattr(ctx.model.config, "max_position_embeddings", None)
    if positions is not None and settings.max_length > positions:
        raise HarnessError(
            f"eval.perplexity.max_length ({settings.max_length}) exceeds the model's {positions} positions; lower it"
        )
    sections = [s for s in ctx.heldout_sections[: ctx.limit] if s.text.strip()]
    records: list[SampleRecord] = []
    tokens = n_bytes = 0
    for section in sections:
        scored = score_text(
            ctx.model, ctx.tokenizer, section.text,
            max_length=settings.max_length, stride=settings.stride, batch_size=settings.batch_size,
            autocast_bf16=ctx.config.eval.bf16_autocast,
        )
        records.extend(_chunk_records(section, scored, settings.bootstrap_chunk_tokens))
        tokens += len(scored.nlls)
        n_bytes += scored.n_bytes
    return EvalOutput(
        records=records,
        details={
            "mode": "disjoint" if settings.stride == settings.max_length else "strided",
            "max_length": settings.max_length,
            "stride": settings.stride,
            "bf16_autocast": ctx.config.eval.bf16_autocast,
            "tokens": tokens,
            "bytes": n_bytes,
            "sections": len(sections),
            "unit": f"chunks of up to {settings.bootstrap_chunk_tokens} scored tokens",
            "first_token": "conditioned on the tokenizer's BOS (EOS when it has none), as in lm-eval",
        },
    )


SECTION = "Domain text"
SPEC = register(
    EvalSpec(
        name="perplexity",
        description="Token perplexity and bits-per-byte of the held-out domain text (strided windows, each token scored once).",
        metrics=(
            MetricSpec(
                "heldout_perplexity", higher_is_better=False, aggregation="exp_ratio",
                presentation=MetricPresentation(
                    label="Held-out perplexity", decimals=2, section=SECTION, verdict="headline", headline_stage="domain"
                ),
            ),
            MetricSpec(
                "heldout_bits_per_byte", higher_is_better=False, aggregation="ratio",
                presentation=MetricPresentation(label="Held-out bits/byte", decimals=3, section=SECTION),
            ),
        ),
        run=run_perplexity,
        dataset="domain_split",
    )
)
