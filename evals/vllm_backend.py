"""vLLM as a generation backend (`eval.generation.backend: vllm`): the same greedy replies, at GPU serving speed.

Imported only when configured; vLLM needs a CUDA GPU and `pip install vllm`. It gets exactly what the
transformers backend gets: prompts templated by the harness and tokenized without extra special
tokens (passed as token ids, so vLLM adds no BOS of its own), greedy decoding (temperature 0) capped at
`max_new_tokens`, the same stop ids (the model's generation config plus the tokenizer's EOS), and the
same decoding of the ids (`decode_reply`: special tokens and `<think>` blocks removed). A checkpoint's
adapter is applied with a `LoRARequest` on its start model (the base, or the merged parent for
`instruct`). vLLM computes in bf16, so its replies can differ from fp32 transformers replies; the
cache key names the backend and dtype, so the two never mix.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from harness.evals.generate import Generation, decode_reply, end_of_turn_ids
from harness.run.config import ModelConfig
from harness.core.errors import HarnessError

VLLM_DTYPE = "bfloat16"
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""`max_lora_rank` values vLLM accepts (an adapter's rank may be anything up to it)."""


def require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise HarnessError(
            "eval.generation.backend is vllm but the vllm package is not installed; "
            "pip install vllm (GPU) or use transformers"
        )


def max_lora_rank(adapter_dir: Path) -> int:
    """The smallest `max_lora_rank` vLLM accepts that fits the adapter's rank `r`."""
    rank = int(json.loads((Path(adapter_dir) / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    fitting = [allowed for allowed in LORA_RANKS if allowed >= rank]
    if not fitting:
        raise HarnessError(f"{adapter_dir}: LoRA rank {rank} is above vLLM's largest ({LORA_RANKS[-1]}); use the transformers backend")
    return fitting[0]


class VllmBackend:
    """Greedy generation with `vllm.LLM` on `model_ref`, plus the adapter in `adapter_dir` when given."""

    name = "vllm"

    def __init__(self, model_ref: str, tokenizer: Any, *, adapter_dir: Path | None, model_cfg: ModelConfig, seed: int) -> None:
        require_vllm()
        from transformers import GenerationConfig
        from vllm import LLM

        self.tokenizer = tokenizer
        self.model_ref = model_ref
        self.adapter_dir = Path(adapter_dir) if adapter_dir is not None else None
        lora = {"enable_lora": True, "max_lora_rank": max_lora_rank(self.adapter_dir)} if self.adapter_dir else {}
        revision = model_cfg.revision if not Path(model_ref).is_dir() else None
        self.llm = LLM(
            model=model_ref,
            revision=revision,
            trust_remote_code=model_cfg.trust_remote_code,
            dtype=VLLM_DTYPE,
            seed=seed,
            **lora,
        )
        try:
            configured = GenerationConfig.from_pretrained(model_ref, revision=revision).eos_token_id
        except OSError:
            configured = None
        self.stop_token_ids = end_of_turn_ids(configured, tokenizer)

    def identity(self) -> dict[str, Any]:
        import vllm

        return {"dtype": VLLM_DTYPE, "vllm": vllm.__version__}

    def rows_that_fit(self, width: int, max_new_tokens: int) -> int:
        """Every prompt at once: vLLM schedules its own batches within the GPU memory it reserved."""
        return sys.maxsize

    def generate(self, prompt_ids: list[list[int]], *, budgets: list[int]) -> list[Generation]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt
        from vllm.lora.request import LoRARequest

        params = [SamplingParams(temperature=0.0, max_tokens=budget, stop_token_ids=self.stop_token_ids) for budget in budgets]
        lora = LoRARequest("checkpoint", 1, str(self.adapter_dir)) if self.adapter_dir else None
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=ids) for ids in prompt_ids], params, use_tqdm=False, lora_request=lora
        )
        return [decode_reply(self.tokenizer, list(output.outputs[0].token_ids), self.stop_token_ids) for output in outputs]
