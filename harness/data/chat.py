"""Chat formatting shared by SFT and generation, so a model is trained and asked in the same format.

Thinking is turned off (`enable_thinking=False`): reasoning models such as Qwen3 otherwise open every
reply with a `<think>` block, which counseling replies and their metrics must not contain. Templates
that have no such switch ignore the variable.
"""

from __future__ import annotations

import re
from typing import Any

_THINK_BLOCK = re.compile(r"<think>.*?(</think>|$)\s*", re.DOTALL)


def render_chat(tokenizer: Any, messages: list[dict], *, add_generation_prompt: bool) -> str:
    """The conversation as the model sees it, as text (tokenize it with `add_special_tokens=False`)."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, enable_thinking=False
    )


def strip_thinking(text: str) -> str:
    """A reply without any `<think>...</think>` block (an unclosed one runs to the end)."""
    return _THINK_BLOCK.sub("", text).strip()
