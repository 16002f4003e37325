"""Export the held-out perplexity eval as an lm-evaluation-harness task, so `lm_eval` can reproduce our number.

The export is a folder with two files: `<task>.jsonl`, one document per held-out section (exactly the
text `harness.evals.perplexity` scores, non-empty sections only), and `<task>.yaml`, a `loglikelihood_rolling`
task over it with lm-eval's `word_perplexity`, `byte_perplexity` and `bits_per_byte`. lm-eval scores
each document with disjoint windows of the model's `max_length` after a BOS (or EOS) token, which is
our perplexity eval with `stride == max_length`; both sum NLL over documents and divide by UTF-8
bytes, so lm-eval's `bits_per_byte` equals our `heldout_bits_per_byte` for the same `max_length`
(pass it as `--model_args ...,max_length=N`; the YAML's metadata names it).

The YAML points at the JSONL by absolute path (lm-eval resolves `data_files` against the current
directory, not the YAML's): export again after moving the folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from harness.core.atomic import atomic_write_text
from harness.run.config import HarnessConfig
from harness.data.corpus import Section, load_domain_corpus
from harness.data.run_data import data_file_errors

LM_EVAL_METRICS = {"word_perplexity": "weighted_perplexity", "byte_perplexity": "weighted_perplexity", "bits_per_byte": "bits_per_byte"}
"""lm-eval's rolling-loglikelihood metrics and their aggregations (all: lower is better)."""


def lm_eval_task_name(config_name: str) -> str:
    """`harness_heldout_<config name>`, reduced to the lowercase letters, digits and underscores lm-eval task names use."""
    slug = re.sub(r"[^a-z0-9]+", "_", config_name.lower()).strip("_")
    return f"harness_heldout_{slug}" if slug else "harness_heldout"


def heldout_documents(sections: list[Section]) -> list[dict[str, object]]:
    """One lm-eval document per held-out section that the perplexity eval scores (those with any text)."""
    return [{"section": s.index, "title": s.title, "text": s.text} for s in sections if s.text.strip()]


def task_config(task: str, data_file: Path, *, max_length: int, split_fingerprint: str) -> dict[str, object]:
    """The lm-eval 0.4 task config: a rolling-loglikelihood task over the `text` field of a local JSONL file."""
    return {
        "task": task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "text",
        "metric_list": [
            {"metric": name, "aggregation": aggregation, "higher_is_better": False} for name, aggregation in LM_EVAL_METRICS.items()
        ],
        "metadata": {
            "version": 1.0,
            "max_length": max_length,
            "domain_split_sha256": split_fingerprint,
            "source": "harness export-lm-eval: the held-out sections of the domain PDF",
        },
    }


def export_lm_eval_task(config: HarnessConfig, out_dir: Path) -> Path:
    """Write the held-out sections of `config`'s domain PDF as an lm-eval task into `out_dir`; return the YAML path."""
    with data_file_errors():
        corpus = load_domain_corpus(config.data.domain)
    out_dir = Path(out_dir).resolve()
    task = lm_eval_task_name(config.name)
    data_file = out_dir / f"{task}.jsonl"
    documents = heldout_documents(corpus.heldout_sections)
    atomic_write_text(data_file, "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc in documents))
    settings = task_config(
        task, data_file, max_length=config.eval.perplexity.max_length, split_fingerprint=corpus.split_fingerprint()
    )
    yaml_file = out_dir / f"{task}.yaml"
    atomic_write_text(yaml_file, yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))
    return yaml_file


def lm_eval_cli_arguments(
    yaml_file: Path, *, pretrained: str, peft: str | None = None, device: str = "cpu", batch_size: int = 1
) -> list[str]:
    """`lm_eval` arguments that reproduce `heldout_bits_per_byte` for a model (and adapter) on an exported task."""
    settings = yaml.safe_load(Path(yaml_file).read_text(encoding="utf-8"))
    model_args = f"pretrained={pretrained}" + (f",peft={peft}" if peft else "")
    model_args += f",max_length={settings['metadata']['max_length']},dtype=float32"
    return [
        "--include_path", str(Path(yaml_file).parent),
        "--tasks", settings["task"],
        "--model", "hf",
        "--model_args", model_args,
        "--device", device,
        "--batch_size", str(batch_size),
    ]
