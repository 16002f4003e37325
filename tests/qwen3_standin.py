"""A tiny offline stand-in for Qwen/Qwen3-1.7B: the same architecture class with random weights, and a tokenizer we build.

What makes it a Qwen3 for the harness is what the real model's files say, reproduced here: `model_type:
qwen3` with `q_proj/k_proj/v_proj/o_proj` attention and `gate/up/down_proj` MLP, tied embeddings, a
ChatML tokenizer whose EOS is `<|im_end|>` and whose pad token is `<|endoftext|>` (so the harness must
not replace it), `<think>`/`</think>` as ordinary (non-special) added tokens that survive
`skip_special_tokens`, two end-of-turn ids in generation_config.json plus sampling defaults the harness
must ignore, and a chat template (written for this project) that renders an empty
`<think>\\n\\n</think>\\n\\n` block before the reply when `enable_thinking=False`.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "harness" / "sample_data"

EMPTY_THINK = "<think>\n\n</think>\n\n"

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{%- set reply = message['content'] -%}"
    "{%- if '</think>' in reply -%}{%- set reply = reply.split('</think>')[-1].lstrip('\\n') -%}{%- endif -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if loop.last -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{{- reply + '<|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
)
"""The latest assistant turn carries the (empty) thinking block, as Qwen3's own template renders it, so
SFT trains on exactly the text generation is prompted with."""


def build_standin_tokenizer(vocab_size: int = 2048):
    """A byte-level BPE trained on the shipped sample texts, with Qwen3's special and thinking tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [path.read_text(encoding="utf-8") for path in sorted(SAMPLE_DATA.glob("*.jsonl"))]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(texts, trainer)
    backend.add_tokens([AddedToken(token, special=False, normalized=False) for token in ("<think>", "</think>")])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def build_qwen3_standin(directory: Path, *, seed: int = 0) -> Path:
    """Write config.json, model.safetensors, generation_config.json and tokenizer files of a ~0.1M-parameter Qwen3."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    directory = Path(directory)
    tokenizer = build_standin_tokenizer()
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=end_of_text,
        eos_token_id=end_of_turn,
        pad_token_id=end_of_text,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=end_of_text,
        eos_token_id=[end_of_turn, end_of_text],
        pad_token_id=end_of_text,
        do_sample=True,
        temperature=0.6,
        top_p=0.95,
        top_k=20,
    )
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
