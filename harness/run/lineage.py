"""The lineage table: which arms a run trains, from what, and which contrasts its report states.

An arm is a row: a name, a stage (`domain` or `instruct`), a parent (`base` or another arm) and
overrides of settings for that arm alone. Everything that needs the topology (training order, the
merge chain, the deltas, the report's order, colours and verdict) reads it from here, so a new arm,
a chain of stages or a second domain corpus is a config change, not a code change.

Comparisons: every arm against `base`, every arm against its parent, and the named contrasts of the
`comparisons:` list (e.g. what the domain stage bought before SFT: `instruct` vs `instruct-only`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

BASE = "base"
Stage = Literal["domain", "instruct"]
OVERRIDABLE_SECTIONS = ("lora.", "training.", "data.domain.", "data.counseling.")
OVERRIDABLE_KEYS = ("seed", "model.quantization")
"""Settings an arm may change for itself; evals, the model and safety data stay the run's, so every arm
is measured on the same items with the same settings (a grid axis may vary eval settings for every arm at once)."""


def is_eval_setting(key: str) -> bool:
    """Whether dotted setting `key` changes how checkpoints are measured, not what is trained."""
    return key.startswith("eval.")


def check_overridable(settings: dict[str, Any], where: str | None = None) -> None:
    """Refuse a setting an arm (or the grid axis `where`) may not change for itself; eval settings vary only
    on a grid axis, where every checkpoint of a point is measured with them."""
    allowed = ", ".join([*(f"{section}*" for section in OVERRIDABLE_SECTIONS), *OVERRIDABLE_KEYS])
    prefix = f"{where}: " if where else ""
    for key in settings:
        if is_eval_setting(key):
            raise ValueError(
                f"{prefix}`{key}` is an eval setting, and an arm is measured with the same eval settings as the checkpoints "
                f"it is compared with; arms vary {allowed}; vary eval settings on a grid axis (grid: {{{key}: [...]}})"
            )
        if key not in OVERRIDABLE_KEYS and not key.startswith(OVERRIDABLE_SECTIONS):
            raise ValueError(f"{prefix}`{key}` is not per-arm; arms and grid axes vary {allowed}, and grid axes also eval.*")


def plain_name(value: str, what: str) -> str:
    """A name that is safe as a directory name (arms and runs become directories)."""
    if not value or value in {".", ".."} or any(c in value for c in "/\\\0") or value != value.strip():
        raise ValueError(f"{what} {value!r} is not a plain directory name; use letters, digits, '-', '_' or '.'")
    return value


class ArmSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    stage: Stage
    parent: str = BASE
    """`base` or the name of another arm, whose merged weights this arm starts from."""
    label: str | None = None
    """How the verdict names what this arm bought over base, e.g. "Domain adaptation"."""
    overrides: dict[str, Any] = {}
    """Dotted setting -> value for this arm alone, e.g. {"lora.r": 16, "data.domain.pdf": "other.pdf"}."""

    @field_validator("name")
    @classmethod
    def _plain(cls, v: str) -> str:
        plain_name(v, "arm name")
        if v == BASE:
            raise ValueError("`base` is the untrained start model, not an arm; give the arm another name")
        return v

    @field_validator("overrides")
    @classmethod
    def _overridable(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_overridable(v)
        return v


class ComparisonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arm: str
    reference: str
    label: str
    """What the contrast measures, e.g. "The domain stage before SFT"."""


CLASSIC_ARMS = (
    ArmSpec(name="domain", stage="domain", label="Domain adaptation"),
    ArmSpec(name="instruct-only", stage="instruct", label="Instruction tuning alone"),
    ArmSpec(name="instruct", stage="instruct", parent="domain", label="The full pipeline"),
)
"""The 2x2 of the original study; also what an arm given by name alone (`arms: [domain]`) refers to."""
CLASSIC_COMPARISONS = (ComparisonSpec(arm="instruct", reference="instruct-only", label="The domain stage before SFT"),)


def expand_named_arms(data: Any) -> Any:
    """`arms: [domain, instruct]` picks rows of the classic table; their named contrasts come along by default."""
    if not isinstance(data, dict) or not isinstance(data.get("arms"), list):
        return data
    classic = {arm.name: arm for arm in CLASSIC_ARMS}
    arms = [classic.get(item, item) if isinstance(item, str) else item for item in data["arms"]]
    for item in arms:
        if isinstance(item, str):
            raise ValueError(f"arms: {item!r} is not a classic arm ({', '.join(classic)}); describe it as a row with name, stage and parent")
    data = {**data, "arms": arms}
    if data.get("comparisons") is None:
        names = {a.name if isinstance(a, ArmSpec) else a.get("name") for a in arms if isinstance(a, (ArmSpec, dict))}
        data["comparisons"] = [c for c in CLASSIC_COMPARISONS if {c.arm, c.reference} <= names]
    return data


@dataclass(frozen=True)
class Contrast:
    arm: str
    reference: str
    label: str


class Lineage(BaseModel):
    """The validated table: unique names, known parents, no cycles, comparisons between known checkpoints."""

    model_config = ConfigDict(extra="ignore")

    arms: list[ArmSpec] = list(CLASSIC_ARMS)
    comparisons: list[ComparisonSpec] = list(CLASSIC_COMPARISONS)

    @model_validator(mode="before")
    @classmethod
    def _named_arms(cls, data: Any) -> Any:
        return expand_named_arms(data)

    @model_validator(mode="after")
    def _well_formed(self) -> Lineage:
        names = [arm.name for arm in self.arms]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"arms: {', '.join(duplicates)} appears more than once; arm names must be unique")
        known = {BASE, *names}
        for i, arm in enumerate(self.arms):
            if arm.parent not in known:
                raise ValueError(f"arms[{i}] ({arm.name}): parent {arm.parent!r} is neither `base` nor an arm in `arms`; add it or fix the name")
            if arm.name in self.ancestors(arm.parent) or arm.parent == arm.name:
                raise ValueError(f"arms[{i}] ({arm.name}): its parents lead back to itself; the lineage must be a tree rooted at base")
        for i, comparison in enumerate(self.comparisons):
            for side in (comparison.arm, comparison.reference):
                if side not in known:
                    raise ValueError(f"comparisons[{i}]: {side!r} is not `base` or an arm in `arms`")
        return self

    def arm(self, name: str) -> ArmSpec:
        return next(arm for arm in self.arms if arm.name == name)

    @property
    def names(self) -> list[str]:
        return [arm.name for arm in self.arms]

    def ancestors(self, name: str) -> list[str]:
        """The arms `name` starts from, root first (base excluded); stops at a cycle instead of looping."""
        chain: list[str] = []
        by_name = {arm.name: arm for arm in self.arms}
        current = by_name.get(name)
        while current is not None and current.parent != BASE and current.parent not in chain:
            chain.insert(0, current.parent)
            current = by_name.get(current.parent)
        return chain

    def training_order(self) -> list[ArmSpec]:
        """Every arm after its parent, otherwise in table order."""
        ordered: list[ArmSpec] = []
        done = {BASE}
        while len(ordered) < len(self.arms):
            for arm in self.arms:
                if arm.name not in done and arm.parent in done:
                    ordered.append(arm)
                    done.add(arm.name)
        return ordered

    def checkpoint_order(self) -> list[str]:
        """How reports list checkpoints: base, then the arms in training order."""
        return [BASE, *(arm.name for arm in self.training_order())]

    def contrasts(self) -> list[Contrast]:
        """Every arm vs base, every arm vs its parent, then the named comparisons; each pair once."""
        found: dict[tuple[str, str], Contrast] = {}
        for arm in self.training_order():
            found[(arm.name, BASE)] = Contrast(arm.name, BASE, f"{arm.label or arm.name} ({arm.name} vs base)")
            if arm.parent != BASE:
                label = f"The {arm.stage} stage on top of {arm.parent} ({arm.name} vs {arm.parent})"
                found[(arm.name, arm.parent)] = Contrast(arm.name, arm.parent, label)
        for c in self.comparisons:
            found[(c.arm, c.reference)] = Contrast(c.arm, c.reference, f"{c.label} ({c.arm} vs {c.reference})")
        return list(found.values())

    def pairs_among(self, names: list[str]) -> list[tuple[str, str]]:
        """(checkpoint, reference) pairs to compare among `names`: the contrasts, and anything outside the table vs base."""
        pairs = [(c.arm, c.reference) for c in self.contrasts() if c.arm in names and c.reference in names]
        outside = [(name, BASE) for name in names if name != BASE and name not in self.names and BASE in names]
        return pairs + outside

    def stages_between(self, arm: str, reference: str) -> set[str]:
        """Stages trained in one lineage but not the other: what a contrast between the two can show."""
        mine = {*self.ancestors(arm), arm} - {BASE}
        theirs = {*self.ancestors(reference), reference} - {BASE}
        return {self.arm(name).stage for name in mine ^ theirs}


def lineage_of(config: dict[str, Any]) -> Lineage:
    """The lineage recorded in a run's config.yaml (older runs list classic arm names)."""
    return Lineage.model_validate({"arms": config.get("arms", list(CLASSIC_ARMS)), "comparisons": config.get("comparisons")})
