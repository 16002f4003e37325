"""Grids over settings and seed replicates: the lineage table expanded into a plan of distinct nodes.

`grid:` names axes; each axis is a dotted setting with its values (`lora.r: [4, 16]`), or a name
whose values are mappings of settings that move together (`quant_lr: [{model.load_in_8bit: true,
training.domain.learning_rate: 2e-4}, {...}]`). Points are the cartesian product of the axes;
`seeds:` replicates every point. Each table arm at each point and seed becomes a node; nodes whose
effective settings and parent are identical are one node, trained and evaluated once (a domain arm
shared by instruct variants that differ only in instruct settings, for example). `base` is one node.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.run.lineage import BASE, ArmSpec, ComparisonSpec, Lineage


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


@dataclass(frozen=True)
class Member:
    """One table arm at one grid point and seed, and the node that trains it."""

    arm: str
    point: str
    seed: int
    node: str


@dataclass(frozen=True)
class Plan:
    lineage: Lineage
    """The expanded table: one row per distinct node."""
    points: list[GridPoint]
    seeds: list[int]
    members: list[Member] = field(default_factory=list)

    @property
    def is_grid(self) -> bool:
        return len(self.points) > 1 or len(self.seeds) > 1

    def node(self, arm: str, point: str, seed: int) -> str:
        """The node that trains table arm `arm` at `point` and `seed`; `base` is always `base`."""
        if arm == BASE:
            return BASE
        return next(m.node for m in self.members if (m.arm, m.point, m.seed) == (arm, point, seed))

    def shared(self) -> dict[str, list[Member]]:
        """node -> the table arms at points and seeds it serves, for nodes serving more than one."""
        by_node: dict[str, list[Member]] = {}
        for member in self.members:
            by_node.setdefault(member.node, []).append(member)
        return {node: members for node, members in by_node.items() if len(members) > 1}


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
            overrides = {**arm.overrides, **point.settings}
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
    return Plan(Lineage(arms=rows, comparisons=unique), points, seeds, members)
