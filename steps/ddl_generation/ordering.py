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


def _ordered(nodes: list[int], prerequisites: dict[int, set[int]]) -> list[int]:
    """Nodes with prerequisites first, smallest number first among the ready; a cycle is broken
    by taking the smallest waiting node."""
    waiting = {n: len(prerequisites[n]) for n in nodes}
    dependents: dict[int, list[int]] = {}
    for n in nodes:
        for p in prerequisites[n]:
            dependents.setdefault(p, []).append(n)
    ready = [n for n in nodes if waiting[n] == 0]
    heapq.heapify(ready)
    unplaced, result, placed = sorted(nodes), [], set()
    while len(result) < len(nodes):
        if ready:
            n = heapq.heappop(ready)
        else:
            n = next(m for m in unplaced if m not in placed)
        if n in placed:
            continue
        placed.add(n)
        result.append(n)
        for d in dependents.get(n, []):
            waiting[d] -= 1
            if waiting[d] == 0 and d not in placed:
                heapq.heappush(ready, d)
    return result


def _strongly_connected(prerequisites: list[set[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit at 1,000s of tables)."""
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    components: list[list[int]] = []
    for root in range(len(prerequisites)):
        if root in index_of:
            continue
        work = [(root, iter(sorted(prerequisites[root])))]
        index_of[root] = low[root] = len(index_of)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index_of[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
            elif child not in index_of:
                index_of[child] = low[child] = len(index_of)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(prerequisites[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index_of[child])
    return components


def dependency_order(relations: list[Relation]) -> list[Relation]:
    """``relations`` reordered so prerequisites come first.

    Tables in a cycle form one group, placed as a whole after what the group needs; inside the
    group the earliest listed table that waits goes first.
    """
    by_name = {r.name: r for r in relations}
    by_oid = {r.oid: r.name for r in relations}
    index = {r.name: i for i, r in enumerate(relations)}
    prerequisites = [{index[n] for n in _prerequisites(r, by_name, by_oid)} for r in relations]
    components = _strongly_connected(prerequisites)
    # Number groups by their earliest listed table so that ties follow the table list.
    components.sort(key=lambda members: members[0])
    component_of = {member: c for c, members in enumerate(components) for member in members}
    group_needs = {
        c: {component_of[p] for m in members for p in prerequisites[m]} - {c} for c, members in enumerate(components)
    }
    order: list[int] = []
    for c in _ordered(list(range(len(components))), group_needs):
        members = components[c]
        inside = {m: prerequisites[m] & set(members) for m in members}
        order += _ordered(members, inside)
    return [relations[i] for i in order]


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
