"""The order in which the DDL files can be applied, and which file adds each foreign key.

A table comes after the tables its foreign keys reference, a view after the relations it reads and
a partition after its parent. Ties and cycles are broken by the table list's order, so the result is
deterministic. A foreign key normally goes at the end of its own table's file; when a cycle puts
the referenced table later, the key moves to the end of the referenced table's file (the first
point where both tables exist) and the owner's file says so in a comment. Keys to tables outside
the list stay comments.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from dp.table_list import TableName
from steps.ddl_generation.introspect import Relation
from steps.ddl_generation.model import ForeignKey


@dataclass
class ForeignKeyPlan:
    """What one table's DDL file says about foreign keys."""

    add: list[tuple[TableName, ForeignKey]] = field(default_factory=list)  # (owning table, key) to add here
    moved: list[tuple[ForeignKey, TableName]] = field(default_factory=list)  # own key added in that table's file
    outside: list[ForeignKey] = field(default_factory=list)  # own key to a table not in the list


def _prerequisites(relation: Relation, by_name: dict[TableName, Relation], by_oid: dict[int, TableName]) -> set:
    needs = {TableName(fk.ref_schema, fk.ref_table) for fk in relation.table.foreign_keys}
    needs |= {by_oid[oid] for oid in relation.depends_on if oid in by_oid}
    if relation.partition_of is not None:
        needs.add(relation.partition_of)
    needs.discard(relation.name)
    return {name for name in needs if name in by_name}


def dependency_order(relations: list[Relation]) -> list[Relation]:
    """``relations`` reordered so prerequisites come first; cycles broken at the earliest listed table."""
    by_name = {r.name: r for r in relations}
    by_oid = {r.oid: r.name for r in relations}
    index = {r.name: i for i, r in enumerate(relations)}
    waiting_on = [len(_prerequisites(r, by_name, by_oid)) for r in relations]
    dependents: dict[int, list[int]] = {}
    for i, relation in enumerate(relations):
        for name in _prerequisites(relation, by_name, by_oid):
            dependents.setdefault(index[name], []).append(i)
    ready = [i for i, count in enumerate(waiting_on) if count == 0]
    heapq.heapify(ready)
    done = [False] * len(relations)
    ordered: list[Relation] = []
    next_unplaced = 0
    while len(ordered) < len(relations):
        if ready:
            i = heapq.heappop(ready)
        else:  # a cycle: take the earliest listed table still waiting
            while done[next_unplaced]:
                next_unplaced += 1
            i = next_unplaced
        if done[i]:
            continue
        done[i] = True
        ordered.append(relations[i])
        for j in dependents.get(i, []):
            waiting_on[j] -= 1
            if waiting_on[j] == 0 and not done[j]:
                heapq.heappush(ready, j)
    return ordered


def plan_foreign_keys(ordered: list[Relation]) -> dict[TableName, ForeignKeyPlan]:
    position = {r.name: i for i, r in enumerate(ordered)}
    plans = {r.name: ForeignKeyPlan() for r in ordered}
    for relation in ordered:
        plan = plans[relation.name]
        for fk in relation.table.foreign_keys:
            if fk.name in relation.inherited_constraints and relation.partition_of in position:
                continue  # ATTACH PARTITION clones the parent's key
            target = TableName(fk.ref_schema, fk.ref_table)
            if target not in position:
                plan.outside.append(fk)
            elif position[target] <= position[relation.name]:
                plan.add.append((relation.name, fk))
            else:
                plan.moved.append((fk, target))
                plans[target].add.append((relation.name, fk))
    return plans
