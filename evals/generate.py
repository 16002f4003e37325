"""Batched, cached greedy generation: the one way every eval gets replies from a model.

Prompts are chat-templated with `harness.data.chat.render_chat` (the format SFT trains on), tokenized once,
sorted by length and cut into batches (so little compute goes to padding), and handed to a
generation backend: transformers by default (left padding, KV cache), or vLLM for GPU users
(`eval.generation.backend: vllm`, see evals/vllm_backend.py). Replies come back in the caller's order.
`Generator.prefetch` does this once for all generation evals of a checkpoint, each prompt with its
eval's reply budget, so one pass over large batches serves them all.
The disk cache sits above the backend: each reply is cached under a sha256 of everything that can
change it (backend name and settings, model fingerprint, dtype and quantization, the full templated
prompt, generation settings, library versions), one small JSON file per entry written atomically, so a
re-run or a second eval asking the same prompt never generates again.

Batched replies equal one-prompt-at-a-time replies in fp32 (tested). A bitsandbytes 8-bit model is
the exception: LLM.int8 chooses its outlier columns over the whole batch, so a reply can depend on
which prompts shared its batch; the cache then keeps the first reply generated.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.core.atomic import atomic_write_text
from harness.data.chat import render_chat, strip_thinking
from harness.core.errors import HarnessError

if TYPE_CHECKING:
    from harness.models.checkpoints import ResolvedCheckpoint
    from harness.run.config import HarnessConfig

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Generation:
    text: str
    """The reply without special tokens, `<think>` blocks or surrounding whitespace; "" when the model said nothing."""
    n_new_tokens: int
    """Tokens of the reply, not counting the end-of-turn token."""
    hit_token_cap: bool
    """The reply was cut at `max_new_tokens` instead of ending by itself."""


class GenerationBackend(Protocol):
    """Where greedy replies come from; templating, batching and the cache stay in `Generator`, above it."""

    name: str
    stop_token_ids: list[int]
    """End-of-turn ids a reply stops at."""

    def identity(self) -> dict[str, Any]:
        """Everything besides the prompt and `max_new_tokens` that can change a greedy reply (dtype, versions, ...)."""
        ...

    def generate(self, prompt_ids: list[list[int]], *, budgets: list[int]) -> list[Generation]:
        """Greedy replies to templated, tokenized prompts, in order, each at most its own budget of new tokens
        (see `decode_reply`)."""
        ...

    def rows_that_fit(self, width: int, max_new_tokens: int) -> int:
        """The most prompts of up to `width` tokens one `generate` call should take (`batch_size: auto`)."""
        ...


def decode_reply(tokenizer: Any, new_tokens: list[int], stop_token_ids: Sequence[int]) -> Generation:
    """A reply from its generated ids: cut at the first stop id, special tokens and `<think>` blocks removed.

    Shared by every backend, so the same ids give the same `Generation` whoever generated them.
    """
    stop = next((i for i, token in enumerate(new_tokens) if token in stop_token_ids), None)
    reply = new_tokens if stop is None else new_tokens[:stop]
    text = strip_thinking(tokenizer.decode(reply, skip_special_tokens=True))
    return Generation(text=text, n_new_tokens=len(reply), hit_token_cap=stop is None)


class TransformersBackend:
    """Greedy decoding of one left-padded batch with a KV cache written in place (evals/greedy_decoding.py);
    sampling defaults of the model are ignored.

    `decode` replaces the decoder: `greedy_generate` (`model.generate`, as before the in-place decoder) is
    what tests and benchmarks compare against; models with windowed attention layers get it by default.
    """

    MEMORY_SHARE = 0.5
    """Share of the free memory `batch_size: auto` fills: room for the rest of the process and the machine."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, autocast_bf16: bool = False, decode: Callable[..., list[list[int]]] | None = None) -> None:
        from harness.evals.greedy_decoding import attends_to_full_context, greedy_decode, greedy_generate

        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer needs a pad token (harness.models.loading.load_tokenizer sets it to EOS)")
        self.decode = decode or (greedy_decode if attends_to_full_context(model) else greedy_generate)
        self.model = model
        self.tokenizer = tokenizer
        self.autocast_bf16 = autocast_bf16
        configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        self.stop_token_ids = end_of_turn_ids(configured, tokenizer)

    def identity(self) -> dict[str, Any]:
        import torch
        import transformers

        quantization: Any = getattr(self.model.config, "quantization_config", None)
        return {
            "dtype": str(self.model.dtype),
            "quantization": quantization.to_dict() if hasattr(quantization, "to_dict") else quantization,
            "bf16_autocast": self.autocast_bf16,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    def generate(self, prompt_ids: list[list[int]], *, budgets: list[int]) -> list[Generation]:
        import torch

        device = self.model.device
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if self.autocast_bf16 else contextlib.nullcontext()
        with autocast:
            replies = self.decode(
                self.model, prompt_ids, budgets, stop_token_ids=self.stop_token_ids, pad_token_id=self.tokenizer.pad_token_id,
            )
        return [decode_reply(self.tokenizer, reply, self.stop_token_ids) for reply in replies]

    def rows_that_fit(self, width: int, max_new_tokens: int) -> int:
        """Rows whose KV cache (`width + max_new_tokens` positions) and prefill activations fill `MEMORY_SHARE`
        of the free memory: the GPU's, else the machine's."""
        import psutil
        import torch

        from harness.models.throughput import kv_cache_bytes_per_position

        config = self.model.config.get_text_config()
        element = torch.finfo(self.model.dtype).bits // 8
        cache = kv_cache_bytes_per_position(config, element) * (width + max_new_tokens)
        prefill = (width * (3 * config.intermediate_size + 4 * config.hidden_size) + 2 * config.vocab_size) * element
        if self.model.device.type == "cuda":
            free = torch.cuda.mem_get_info(self.model.device)[0]
        else:
            free = psutil.virtual_memory().available
        return max(1, int(self.MEMORY_SHARE * free // (cache + prefill)))


class Generator:
    """Greedy generation for one model, `batch_size` prompts at a time (None: as many as the backend says fit),
    cached under `cache_dir`.

    Replies come from `backend`; without one, from a `TransformersBackend` over `model`.
    """

    def __init__(
        self,
        model: Any | None,
        tokenizer: Any,
        *,
        model_fingerprint: str,
        max_new_tokens: int,
        batch_size: int | None,
        cache_dir: Path | None = None,
        autocast_bf16: bool = False,
        backend: GenerationBackend | None = None,
    ) -> None:
        if (model is None) == (backend is None):
            raise ValueError("pass either a transformers model or a generation backend")
        self.backend = backend or TransformersBackend(model, tokenizer, autocast_bf16=autocast_bf16)
        self.tokenizer = tokenizer
        self.model_fingerprint = model_fingerprint
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._ready: dict[str, Generation] = {}
        """Replies generated or read by this generator and its `with_max_new_tokens` copies, by cache key."""
        self._settings_identity = {
            "backend": self.backend.name,
            **self.backend.identity(),
            "model": model_fingerprint,
            "decoding": "greedy",
            "max_new_tokens": max_new_tokens,
            "stop_token_ids": self.backend.stop_token_ids,
        }

    @property
    def stop_token_ids(self) -> list[int]:
        return self.backend.stop_token_ids

    def with_max_new_tokens(self, max_new_tokens: int) -> Generator:
        """This model, backend, disk cache and generated replies with another reply budget: each eval has its own
        (`budget_for`)."""
        if max_new_tokens == self.max_new_tokens:
            return self
        other = copy.copy(self)
        other.max_new_tokens = max_new_tokens
        other._settings_identity = {**self._settings_identity, "max_new_tokens": max_new_tokens}
        return other

    def templated_prompt(self, messages: Messages) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise HarnessError(
                f"{getattr(self.tokenizer, 'name_or_path', 'the tokenizer')}: no chat template, so prompts cannot be "
                "formatted for generation; evaluate a chat model or add a chat_template to its tokenizer_config.json"
            )
        return render_chat(self.tokenizer, messages, add_generation_prompt=True)

    def cache_key(self, prompt: str) -> str:
        """sha256 over everything that changes a greedy reply to `prompt`."""
        identity = {**self._settings_identity, "prompt": prompt}
        return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()

    def generate(
        self, conversations: Sequence[Messages], *, on_progress: Callable[[int], None] | None = None
    ) -> list[Generation]:
        """One reply per conversation, in input order; `on_progress(n)` is told each time n more are done."""
        prompts = [self.templated_prompt(messages) for messages in conversations]
        keys = [self.cache_key(prompt) for prompt in prompts]
        self._generate_missing(dict(zip(keys, ((prompt, self.max_new_tokens) for prompt in prompts))), Counter(keys), on_progress)
        return [self._ready[key] for key in keys]

    def prefetch(self, requests: Sequence[tuple[int, Sequence[Messages]]]) -> None:
        """Generate the replies of several evals in one pass: (reply budget, conversations) each, every prompt
        with its own budget in the same length-ordered batches. Later `generate` calls on this generator or
        its `with_max_new_tokens` copies are then served what was generated; greedy replies do not depend on
        their batch-mates (fp32), so they are the ones each eval would have generated alone."""
        wanted: dict[str, tuple[str, int]] = {}
        for budget, conversations in requests:
            at_budget = self.with_max_new_tokens(budget)
            for messages in conversations:
                prompt = at_budget.templated_prompt(messages)
                wanted[at_budget.cache_key(prompt)] = (prompt, budget)
        self._generate_missing(wanted, Counter(wanted), None)

    def _generate_missing(
        self, wanted: dict[str, tuple[str, int]], uses: Counter[str], on_progress: Callable[[int], None] | None
    ) -> None:
        """Put a reply for every key of `wanted` (its prompt and budget) in `_ready`: from there, the disk cache,
        or the backend, in batches, writing the disk cache as they finish."""
        for key in wanted.keys() - self._ready.keys():
            if (cached := self._read_cache(key)) is not None:
                self._ready[key] = cached
        missing = {key: wanted[key] for key in wanted if key not in self._ready}
        if on_progress is not None and len(missing) < len(wanted):
            on_progress(sum(uses[key] for key in wanted if key not in missing))
        encoded = {key: self.tokenizer(prompt, add_special_tokens=False)["input_ids"] for key, (prompt, _) in missing.items()}
        for batch in self.batches(encoded, max((budget for _, budget in missing.values()), default=self.max_new_tokens)):
            replies = self.backend.generate([encoded[key] for key in batch], budgets=[missing[key][1] for key in batch])
            for key, generation in zip(batch, replies, strict=True):
                self._ready[key] = generation
                self._write_cache(key, *missing[key], generation)
            if on_progress is not None:
                on_progress(sum(uses[key] for key in batch))

    def batches(self, prompt_ids: dict[Any, list[int]], max_new_tokens: int | None = None) -> list[list[Any]]:
        """The keys of `prompt_ids` in the batches they are generated in: in length order (little padding),
        `batch_size` at a time, or as many as the backend says fit with `max_new_tokens` (default: this
        generator's budget) of room each."""
        by_length = sorted(prompt_ids, key=lambda key: len(prompt_ids[key]))
        if not by_length:
            return []
        budget = max_new_tokens or self.max_new_tokens
        rows = self.batch_size or self.backend.rows_that_fit(len(prompt_ids[by_length[-1]]), budget)
        return [by_length[start : start + rows] for start in range(0, len(by_length), rows)]

    def _cache_file(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def _read_cache(self, key: str) -> Generation | None:
        path = self._cache_file(key)
        if path is None or not path.is_file():
            return None
        entry = json.loads(path.read_text(encoding="utf-8"))
        return Generation(text=entry["text"], n_new_tokens=entry["n_new_tokens"], hit_token_cap=entry["hit_token_cap"])

    def _write_cache(self, key: str, prompt: str, max_new_tokens: int, generation: Generation) -> None:
        path = self._cache_file(key)
        if path is None:
            return
        entry = {
            "backend": self.backend.name,
            "model_fingerprint": self.model_fingerprint,
            "prompt": prompt,
            "max_new_tokens": max_new_tokens,
            "text": generation.text,
            "n_new_tokens": generation.n_new_tokens,
            "hit_token_cap": generation.hit_token_cap,
        }
        atomic_write_text(path, json.dumps(entry, ensure_ascii=False, indent=1))


def build_generator(
    config: HarnessConfig, ckpt: ResolvedCheckpoint, model: Any, tokenizer: Any, *, cache_dir: Path | None
) -> Generator:
    """The generator `eval.generation` asks for: transformers on the loaded `model`, or vLLM on the checkpoint's files."""
    settings = config.eval.generation
    common = {
        "model_fingerprint": ckpt.fingerprint,
        "max_new_tokens": settings.max_new_tokens,
        "batch_size": None if settings.batch_size == "auto" else settings.batch_size,
        "cache_dir": cache_dir,
    }
    if settings.backend == "vllm":
        from harness.evals.vllm_backend import VllmBackend

        backend = VllmBackend(ckpt.start_ref, tokenizer, adapter_dir=ckpt.adapter_dir, model_cfg=config.model, seed=config.seed)
        return Generator(None, tokenizer, backend=backend, **common)
    return Generator(model, tokenizer, autocast_bf16=config.eval.bf16_autocast, **common)


def end_of_turn_ids(configured: int | list[int] | None, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the model's generation config may list several (Qwen3 has two), plus the tokenizer's EOS."""
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("neither the model's generation config nor the tokenizer names an EOS token; generation could not stop")
    return sorted(ids)
