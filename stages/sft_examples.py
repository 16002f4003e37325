"""Conversations -> token ids with labels on the assistant reply only.

The prompt is the chat template rendered with the generation prompt, exactly the text the model is
given at inference; the completion is the reply followed by whatever the template closes the turn
with (`<|im_end|>` for ChatML), so the model also learns to stop. Prompt and completion are
tokenized separately and concatenated, so the boundary between masked and trained tokens is exact
and the prompt tokens equal the ones generation will see.
"""

from __future__ import annotations

from typing import Any

from harness.data.chat import render_chat
from harness.data.conversations import Conversation, chat_messages
from harness.core.errors import HarnessError
from harness.stages.batching import IGNORE_INDEX, TokenizedExample


def prompt_and_completion(tokenizer: Any, conv: Conversation, system_prompt: str) -> tuple[str, str]:
    """(prompt text ending with the assistant header, reply text ending with the end-of-turn marker)."""
    prompt = render_chat(tokenizer, chat_messages(conv, system_prompt, with_response=False), add_generation_prompt=True)
    full = render_chat(tokenizer, chat_messages(conv, system_prompt, with_response=True), add_generation_prompt=False)
    reply = conv.response.strip()
    at = full.rfind(reply)
    if at < 0:
        raise HarnessError(
            f"conversation {conv.id}: the tokenizer's chat template does not render the reply verbatim, so the "
            "assistant turn cannot be located for the loss mask; use a model whose chat template keeps message text"
        )
    return prompt, reply + full[at + len(reply) :].rstrip()


def tokenize_conversation(tokenizer: Any, conv: Conversation, system_prompt: str, max_length: int) -> TokenizedExample | None:
    """Ids truncated to `max_length` with -100 on every prompt token; None when no reply token fits."""
    prompt, completion = prompt_and_completion(tokenizer, conv, system_prompt)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if len(prompt_ids) >= max_length:
        return None
    input_ids = (prompt_ids + completion_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + completion_ids)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def sft_examples(
    tokenizer: Any, conversations: list[Conversation], system_prompt: str, max_length: int, *, split: str
) -> list[TokenizedExample]:
    """Tokenized conversations; those whose prompt alone fills `max_length` are left out (they train nothing)."""
    examples = [tokenize_conversation(tokenizer, conv, system_prompt, max_length) for conv in conversations]
    kept = [example for example in examples if example is not None]
    if conversations and not kept:
        raise HarnessError(
            f"every {split} conversation's prompt is at least training.instruct.max_length={max_length} tokens; "
            "raise training.instruct.max_length"
        )
    return kept
