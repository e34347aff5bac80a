"""Splitting a schema into table groups whose dictionaries fit one prompt's token budget.

A schema within budget is one group. A larger one is cut along foreign keys: each connected
component that fits stays whole, a component that does not is packed by breadth-first walks from its
hub tables (most neighbours first), and the pieces are then packed first-fit into as few groups as
the budget allows. Every table lands in exactly one group; a table whose dictionary alone exceeds the
budget gets a group of its own and a warning (its prompt text is cut, never silently).
"""

from __future__ import annotations

import logging
from collections import deque

from dp.table_list import TableName
from steps.qa_generation.schema import Schema

log = logging.getLogger(__name__)


def _hub_order(schema: Schema, keys: list[TableName]) -> list[TableName]:
    order = {key: i for i, key in enumerate(schema.sort(keys))}
    return sorted(keys, key=lambda k: (-len(schema.neighbours(k)), order[k]))


def _components(schema: Schema) -> list[list[TableName]]:
    seen: set[TableName] = set()
    components = []
    for seed in _hub_order(schema, schema.keys):
        if seed in seen:
            continue
        component, queue = [], deque([seed])
        seen.add(seed)
        while queue:
            key = queue.popleft()
            component.append(key)
            for other in schema.neighbours(key):
                if other not in seen:
                    seen.add(other)
                    queue.append(other)
        components.append(component)
    return components


def _pack_component(schema: Schema, component: list[TableName], budget: int) -> list[list[TableName]]:
    """Breadth-first walks from hub tables, each taking the tables that still fit the budget."""
    left = set(component)
    pieces = []
    for seed in _hub_order(schema, component):
        if seed not in left:
            continue
        piece, used = [seed], schema.tokens(seed)
        left.discard(seed)
        if used > budget:
            log.warning(
                "the dictionary of %s alone (~%d tokens) exceeds the token budget %d; its prompt text will be cut",
                seed.display, used, budget,
            )
        queue, visited = deque([seed]), {seed}
        while queue:
            for other in schema.neighbours(queue.popleft()):
                if other in left and other not in visited:
                    visited.add(other)
                    cost = schema.tokens(other)
                    if used + cost <= budget:
                        piece.append(other)
                        used += cost
                        left.discard(other)
                        queue.append(other)
        pieces.append(piece)
    return pieces


def group_tables(schema: Schema, budget: int) -> list[list[TableName]]:
    """Groups of tables (manifest order inside each) whose dictionaries fit ``budget`` tokens."""
    if sum(schema.tokens(k) for k in schema.keys) <= budget:
        return [schema.keys]
    pieces: list[list[TableName]] = []
    for component in _components(schema):
        if sum(schema.tokens(k) for k in component) <= budget:
            pieces.append(component)
        else:
            pieces.extend(_pack_component(schema, component, budget))
    bins: list[tuple[list[TableName], int]] = []
    for piece in pieces:
        cost = sum(schema.tokens(k) for k in piece)
        for i, (members, used) in enumerate(bins):
            if used + cost <= budget:
                bins[i] = (members + piece, used + cost)
                break
        else:
            bins.append((list(piece), cost))
    return [schema.sort(members) for members, _ in bins]
