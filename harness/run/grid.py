"""Grids over settings and seed replicates: the lineage table expanded into a plan of distinct nodes.

`grid:` names axes; each axis is a dotted setting with its values (`lora.r: [4, 16]`), or a name
whose values are mappings of settings that move together (`quant_lr: [{model.load_in_8bit: true,
training.domain.learning_rate: 2e-4}, {...}]`). Points are the cartesian product of the axes;
`seeds:` replicates every point. Each table arm at each point and seed becomes a node; nodes whose
effective settings and parent are identical are one node, trained and evaluated once (a domain arm
shared by instruct variants that differ only in instruct settings, for example). `base` is one node.

An axis may also vary eval settings (`eval.generation.max_new_tokens: [96, 256]`). Those never change
what a node trains, so points that differ only in them share every node; each checkpoint is then
evaluated once per distinct eval setting it is needed at (`base` too), and each of those evaluations is
a results file of its own, named `NODE@e0`, `NODE@e1`, ... (the plain node name when the run has one
eval setting).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.run.lineage import BASE, ArmSpec, ComparisonSpec, Lineage, is_eval_setting


@dataclass(frozen=True)
class GridPoint:
    id: str
    """`p0`, `p1`, ... in the order of the cartesian product."""
    settings: dict[str, Any]
    """Dotted setting -> value at this point."""
    axes: dict[str, Any]
    """Axis name -> this point's value of it (a mapping for a paired axis)."""

    @property
    def label(self) -> str:
        return ", ".join(f"{key}={value}" for key, value in self.settings.items()) or "(no grid)"

    @property
    def training_settings(self) -> dict[str, Any]:
        """What the point changes in training: its settings outside `eval.`."""
        return {key: value for key, value in self.settings.items() if not is_eval_setting(key)}

    @property
    def eval_settings(self) -> dict[str, Any]:
        return {key: value for key, value in self.settings.items() if is_eval_setting(key)}


@dataclass(frozen=True)
class Member:
    """One table arm at one grid point and seed, and the node that trains it."""

    arm: str
    point: str
    seed: int
    node: str


@dataclass(frozen=True)
class Evaluation:
    """One checkpoint measured with one eval setting: one results file of the run."""

    name: str
    """The results' name: the node's, or `NODE@eK` when the grid varies eval settings."""
    checkpoint: str
    """The node measured (`base` or a trained node)."""
    eval_settings: dict[str, Any]
    """Dotted eval setting -> value, on top of the run's eval settings."""


@dataclass(frozen=True)
class Plan:
    lineage: Lineage
    """The expanded table: one row per distinct node."""
    points: list[GridPoint]
    seeds: list[int]
    members: list[Member] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    """Every checkpoint at every eval setting it is needed at, each once: base first, then training order."""
    results: dict[tuple[str, str, int], str] = field(default_factory=dict)
    """(table arm or `base`, point, seed) -> the evaluation that measured it there."""

    @property
    def is_grid(self) -> bool:
        return len(self.points) > 1 or len(self.seeds) > 1

    def node(self, arm: str, point: str, seed: int) -> str:
        """The node that trains table arm `arm` at `point` and `seed`; `base` is always `base`."""
        if arm == BASE:
            return BASE
        return next(m.node for m in self.members if (m.arm, m.point, m.seed) == (arm, point, seed))

    def result(self, arm: str, point: str, seed: int) -> str:
        """The results name of table arm `arm` (or `base`) measured at `point` and `seed`."""
        return self.results[(arm, point, seed)]

    def evaluation(self, name: str) -> Evaluation:
        """The evaluation called `name`; a name outside the plan (an external checkpoint) is itself with no settings."""
        return next((e for e in self.evaluations if e.name == name), Evaluation(name, name, {}))

    def pairs_among(self, names: list[str]) -> list[tuple[str, str]]:
        """(results, reference results) pairs to compare among `names`: every contrast of the nodes, at each eval
        setting; with one eval setting also anything outside the plan vs base."""
        settings = list(dict.fromkeys(_setting_key(e.eval_settings) for e in self.evaluations))
        if len(settings) <= 1:
            return self.lineage.pairs_among(names)
        name_of = {(e.checkpoint, _setting_key(e.eval_settings)): e.name for e in self.evaluations}
        pairs = []
        for setting in settings:
            for arm, reference in self.lineage.pairs_among(self.lineage.checkpoint_order()):
                pair = (name_of.get((arm, setting)), name_of.get((reference, setting)))
                if pair[0] in names and pair[1] in names:
                    pairs.append(pair)
        return pairs

    def shared(self) -> dict[str, list[Member]]:
        """node -> the table arms at points and seeds it serves, for nodes serving more than one."""
        by_node: dict[str, list[Member]] = {}
        for member in self.members:
            by_node.setdefault(member.node, []).append(member)
        return {node: members for node, members in by_node.items() if len(members) > 1}


def _setting_key(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def grid_points(grid: dict[str, list[Any]]) -> list[GridPoint]:
    """The cartesian product of the axes; a paired axis contributes all of a value's settings at once."""
    axes = list(grid.items())
    points = []
    for index, values in enumerate(itertools.product(*(values for _, values in axes))):
        settings: dict[str, Any] = {}
        for (axis, _), value in zip(axes, values):
            settings.update(value if isinstance(value, dict) else {axis: value})
        points.append(GridPoint(f"p{index}", settings, dict(zip((axis for axis, _ in axes), values))))
    return points


def node_name(arm: str, point: GridPoint, seed: int, plan_shape: tuple[int, int]) -> str:
    """The table name where there is no grid and one seed (so plain runs keep their directories)."""
    n_points, n_seeds = plan_shape
    parts = [arm]
    if n_points > 1:
        parts.append(point.id)
    if n_seeds > 1:
        parts.append(f"s{seed}")
    return ".".join(parts)


def expand_plan(
    table: Lineage, points: list[GridPoint], seeds: list[int], node_key: Callable[[ArmSpec], str], *, default_seed: int
) -> Plan:
    """Every table arm at every point and seed, merged into distinct nodes by `node_key` (settings + parent)."""
    rows: list[ArmSpec] = []
    by_key: dict[str, str] = {}
    members: list[Member] = []
    shape = (len(points), len(seeds))
    for point, seed in itertools.product(points, seeds):
        nodes_here: dict[str, str] = {BASE: BASE}
        for arm in table.training_order():
            overrides = {**arm.overrides, **point.training_settings}
            if seed != default_seed:
                overrides["seed"] = seed
            candidate = arm.model_copy(
                update={"name": node_name(arm.name, point, seed, shape), "parent": nodes_here[arm.parent], "overrides": overrides}
            )
            key = node_key(candidate)
            if key not in by_key:
                by_key[key] = candidate.name
                rows.append(candidate)
            nodes_here[arm.name] = by_key[key]
            members.append(Member(arm.name, point.id, seed, by_key[key]))
    plan = Plan(Lineage(arms=rows, comparisons=[]), points, seeds, members)
    comparisons = [
        ComparisonSpec(arm=plan.node(c.arm, point.id, seed), reference=plan.node(c.reference, point.id, seed), label=c.label)
        for c in table.comparisons
        for point, seed in itertools.product(points, seeds)
    ]
    unique = list({(c.arm, c.reference): c for c in comparisons if c.arm != c.reference}.values())
    evaluations, results = _evaluations(plan, [BASE, *(arm.name for arm in table.training_order())])
    return Plan(Lineage(arms=rows, comparisons=unique), points, seeds, members, evaluations, results)


def _evaluations(plan: Plan, table_order: list[str]) -> tuple[list[Evaluation], dict[tuple[str, str, int], str]]:
    """Each node at each distinct eval setting of the points it serves, once; and which one each (arm, point, seed) reads."""
    variants = list(dict.fromkeys(_setting_key(point.eval_settings) for point in plan.points))
    needed: dict[str, Evaluation] = {}
    results: dict[tuple[str, str, int], str] = {}
    for point, seed in itertools.product(plan.points, plan.seeds):
        variant = variants.index(_setting_key(point.eval_settings))
        for arm in table_order:
            node = plan.node(arm, point.id, seed)
            name = node if len(variants) == 1 else f"{node}@e{variant}"
            needed.setdefault(name, Evaluation(name, node, point.eval_settings))
            results[(arm, point.id, seed)] = name
    order = plan.lineage.checkpoint_order()
    evaluations = sorted(needed.values(), key=lambda e: (variants.index(_setting_key(e.eval_settings)), order.index(e.checkpoint)))
    return evaluations, results
