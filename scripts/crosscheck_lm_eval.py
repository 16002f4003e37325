"""Cross-check our held-out bits-per-byte against lm-eval's `loglikelihood_rolling` on the same text and model.

Our perplexity code in disjoint mode (stride == max_length) and lm-eval 0.4.13's HFLM score the
same windows, so the two bits-per-byte values must agree within 1%; this script prints both and
exits non-zero when they do not.

    python scripts/crosscheck_lm_eval.py [--pdf FILE] [--max-length 256] [--batch-size 4]

By default it scores the held-out sections (10%) of the Surgeon General's youth mental health advisory in
`shared/data/domain` with the embedded SmolLM2-135M-Instruct in fp32.

`--exported-task` checks the route a user takes instead: `harness export-lm-eval` writes the config's
held-out sections as an lm-eval task, the `lm_eval` command line scores it (`--model hf`, `peft=` for an
adapter), and the script compares its `bits_per_byte` with our perplexity eval's on the same sections:

    python scripts/crosscheck_lm_eval.py --exported-task --config configs/tiny.yaml [--adapter DIR] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.evals.perplexity import section_nll  # noqa: E402

DEFAULT_PDF = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "domain" / "surgeon_general_protecting_youth_mental_health_2021.pdf"
)
TOLERANCE = 0.01


def ours_bits_per_byte(model: Any, tokenizer: Any, text: str, *, max_length: int, batch_size: int) -> float:
    nll, _, n_bytes = section_nll(model, tokenizer, text, max_length=max_length, stride=max_length, batch_size=batch_size)
    return nll / math.log(2) / n_bytes


def lm_eval_bits_per_byte(model: Any, tokenizer: Any, text: str, *, max_length: int, batch_size: int) -> float:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, max_length=max_length, device="cpu", batch_size=batch_size)
    request = Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=0)
    (loglikelihood,) = lm.loglikelihood_rolling([request], disable_tqdm=True)
    return -loglikelihood / math.log(2) / len(text.encode("utf-8"))


def relative_difference(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def exported_task_crosscheck(config_file: Path, adapter: Path | None, output: Path, batch_size: int) -> int:
    """Export the config's held-out task, run the `lm_eval` CLI on it, and compare with our disjoint-window bits/byte."""
    from harness.evals.lm_eval_export import export_lm_eval_task, heldout_documents, lm_eval_cli_arguments
    from harness.run.config import load_config
    from harness.data.corpus import load_domain_corpus
    from harness.models.loading import load_causal_lm, load_tokenizer, resolve_model

    config = load_config(config_file, [])
    max_length = config.eval.perplexity.max_length
    yaml_file = export_lm_eval_task(config, output / "task")
    base_ref = resolve_model(config.model)
    model = load_causal_lm(base_ref, config.model, quantization="none")
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    tokenizer = load_tokenizer(str(adapter) if adapter is not None else base_ref, config.model)
    documents = heldout_documents(load_domain_corpus(config.data.domain).heldout_sections)
    totals = [section_nll(model.eval(), tokenizer, d["text"], max_length=max_length, stride=max_length, batch_size=batch_size) for d in documents]
    ours = math.fsum(t[0] for t in totals) / math.log(2) / sum(t[2] for t in totals)

    arguments = lm_eval_cli_arguments(
        yaml_file, pretrained=base_ref, peft=str(adapter) if adapter else None, batch_size=batch_size
    ) + ["--output_path", str(output / "lm_eval_results")]
    print("$ lm_eval " + " ".join(arguments), flush=True)
    completed = subprocess.run(["lm_eval", *arguments], capture_output=True, text=True)
    print(completed.stdout)
    if completed.returncode != 0:
        print(completed.stderr[-3000:], file=sys.stderr)
        return 2
    results_file = max((output / "lm_eval_results").rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    theirs = json.loads(results_file.read_text())["results"][yaml_file.stem]["bits_per_byte,none"]
    difference = relative_difference(ours, theirs)
    print(f"ours    (harness perplexity, stride == max_length {max_length}): {ours:.9f} bits/byte")
    print(f"lm-eval (lm_eval CLI on {yaml_file}): {theirs:.9f} bits/byte")
    print(f"relative difference: {difference:.2e} ({'OK' if difference <= TOLERANCE else 'FAIL'}, tolerance {TOLERANCE:.0%})")
    return 0 if difference <= TOLERANCE else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF, help="domain PDF whose held-out sections are scored")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--exported-task", action="store_true", help="cross-check through `harness export-lm-eval` and the lm_eval CLI")
    parser.add_argument("--config", type=Path, default=Path("configs/tiny.yaml"), help="with --exported-task: the run's config")
    parser.add_argument("--adapter", type=Path, default=None, help="with --exported-task: a PEFT adapter dir on the config's base")
    parser.add_argument("--output", type=Path, default=None, help="with --exported-task: where the task and lm-eval results go")
    args = parser.parse_args()
    if args.exported_task:
        output = args.output or Path(tempfile.mkdtemp(prefix="crosscheck-lm-eval-"))
        return exported_task_crosscheck(args.config, args.adapter, output, args.batch_size)

    from harness.run.config import DomainDataConfig, ModelConfig
    from harness.data.corpus import load_domain_corpus
    from harness.models.loading import convert_embedded, load_causal_lm, load_tokenizer

    if not args.pdf.is_file():
        print(f"{args.pdf}: PDF not found; pass --pdf FILE", file=sys.stderr)
        return 2
    text = load_domain_corpus(DomainDataConfig(pdf=args.pdf)).heldout_text
    model_dir = str(convert_embedded("smollm2-135m-instruct"))
    model = load_causal_lm(model_dir, ModelConfig(), quantization="none").eval()
    tokenizer = load_tokenizer(model_dir, ModelConfig())

    started = time.perf_counter()
    ours = ours_bits_per_byte(model, tokenizer, text, max_length=args.max_length, batch_size=args.batch_size)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = lm_eval_bits_per_byte(model, tokenizer, text, max_length=args.max_length, batch_size=args.batch_size)
    theirs_s = time.perf_counter() - started
    difference = relative_difference(ours, theirs)
    print(f"text: {len(text.encode('utf-8'))} bytes of held-out text from {args.pdf.name}; max_length {args.max_length}")
    print(f"ours    (disjoint windows): {ours:.6f} bits/byte  ({ours_s:.1f} s)")
    print(f"lm-eval (loglikelihood_rolling): {theirs:.6f} bits/byte  ({theirs_s:.1f} s)")
    print(f"relative difference: {difference:.2e} ({'OK' if difference <= TOLERANCE else 'FAIL'}, tolerance {TOLERANCE:.0%})")
    return 0 if difference <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
