"""Counseling replies compared with the therapists' reference replies: ROUGE-1/2/L and BERTScore F1.

Each held-out conversation's question is asked with the run's system prompt (the reference reply is
not shown) and the greedy reply is scored against the reference. Similarity to one reference is a
proxy: a good reply worded differently scores low, so the report shows the replies side by side.
"""

from __future__ import annotations

from harness.evals.context import EvalContext
from harness.evals.generate import Messages
from harness.evals.registry import EvalOutput, EvalSpec, MetricSpec, register
from harness.evals.similarity_metrics import bertscore_f1, rouge_scores
from harness.data.conversations import chat_messages
from harness.run.config import EvalConfig
from harness.run.results import MetricPresentation, SampleRecord


def conversations_asked(ctx: EvalContext) -> list[Messages]:
    """Each held-out question under the run's system prompt, without its reference reply."""
    system_prompt = ctx.config.data.counseling.system_prompt
    return [chat_messages(c, system_prompt, with_response=False) for c in ctx.counseling_test[: ctx.limit]]


def run_similarity(ctx: EvalContext) -> EvalOutput:
    conversations = ctx.counseling_test[: ctx.limit]
    system_prompt = ctx.config.data.counseling.system_prompt
    generations = ctx.generator.generate(conversations_asked(ctx))
    replies = [
        SampleRecord(
            id=conversation.id,
            eval="similarity",
            prompt=conversation.prompt,
            reference=conversation.response,
            output=generation.text,
            flags=(["empty_output"] if not generation.text else []) + (["hit_token_cap"] if generation.hit_token_cap else []),
            extra={"question_id": conversation.question_id, "new_tokens": generation.n_new_tokens},
        )
        for conversation, generation in zip(conversations, generations, strict=True)
    ]
    scored = score_replies(replies, ctx.config.eval)
    scored.details.update({"max_new_tokens": ctx.generator.max_new_tokens, "system_prompt": system_prompt})
    return scored


def score_replies(records: list[SampleRecord], settings: EvalConfig) -> EvalOutput:
    """ROUGE and BERTScore of each record's reply against its reference: the scorer of fresh replies and,
    through `harness rescore`, of saved ones (BERTScore's encoder is a scoring tool, not a model under test)."""
    replies = [r.output or "" for r in records]
    references = [r.reference or "" for r in records]
    bertscore = settings.bertscore
    rouge = rouge_scores(replies, references)
    f1 = bertscore_f1(replies, references, model=bertscore.model, num_layers=bertscore.num_layers)
    return EvalOutput(
        records=[
            record.model_copy(update={"values": {**rouge_of_item, "bertscore_f1": f1_of_item}})
            for record, rouge_of_item, f1_of_item in zip(records, rouge, f1, strict=True)
        ],
        details={"bertscore_model": bertscore.model, "bertscore_layer": bertscore.num_layers},
    )


PRESENTATIONS = {
    "rouge1": MetricPresentation(label="ROUGE-1", section="Counseling replies"),
    "rouge2": MetricPresentation(label="ROUGE-2", section="Counseling replies"),
    "rougeL": MetricPresentation(label="ROUGE-L", section="Counseling replies", verdict="headline", headline_stage="instruct"),
    "bertscore_f1": MetricPresentation(
        label="BERTScore F1", section="Counseling replies", verdict="headline", headline_stage="instruct"
    ),
}
SPEC = register(
    EvalSpec(
        name="similarity",
        description="ROUGE-1/2/L and BERTScore F1 of greedy counseling replies against the held-out reference replies.",
        metrics=tuple(
            MetricSpec(name, higher_is_better=True, presentation=presentation) for name, presentation in PRESENTATIONS.items()
        ),
        run=run_similarity,
        needs_generation=True,
        conversations=conversations_asked,
        rescore=score_replies,
        dataset="counseling_split",
    )
)
