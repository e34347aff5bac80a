"""The schema step 2 works on: step 1's manifest tables, their dictionaries and who joins whom.

Tables are keyed by ``TableName``; the neighbour graph is undirected over foreign keys between
manifest tables (declared, or implied by column names where none is declared: implied_keys), plus
a view's links to the manifest tables its definition names (views have no foreign keys but belong
with the tables they read). Orders follow the manifest, so every walk over
this graph is deterministic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dp.table_list import TableName, quote_ident
from steps.ddl_generation.manifest import load_manifest
from steps.ddl_generation.model import ForeignKey, Table
from steps.errors import StepFailed
from steps.qa_generation import roles
from steps.qa_generation.implied_keys import ImpliedJoin, add_implied_foreign_keys

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")


def estimate_tokens(text: str) -> int:
    """Rough token count: one per CJK character, one per three other characters (errs high)."""
    cjk = len(_CJK.findall(text))
    return cjk + -(-(len(text) - cjk) // 3)


def table_key(table: Table) -> TableName:
    return TableName(table.schema, table.name)


@dataclass
class Schema:
    database: str
    language: str  # "zh" or "en": the language of questions and theme texts
    business_context: str
    tables: list[Table]
    dictionaries: dict[TableName, str] = field(default_factory=dict)
    implied_joins: list[ImpliedJoin] = field(default_factory=list)  # foreign keys added from column names

    def __post_init__(self) -> None:
        self._by_key = {table_key(t): t for t in self.tables}
        self._order = {key: i for i, key in enumerate(self._by_key)}
        self._neighbours: dict[TableName, set[TableName]] = {key: set() for key in self._by_key}
        for table in self.tables:
            for fk in table.foreign_keys:
                self._link(table_key(table), TableName(fk.ref_schema, fk.ref_table))
            if table.view_definition:
                for other in self.tables:
                    if other is not table and _names_table(table.view_definition, other):
                        self._link(table_key(table), table_key(other))

    def _link(self, a: TableName, b: TableName) -> None:
        if a != b and a in self._by_key and b in self._by_key:
            self._neighbours[a].add(b)
            self._neighbours[b].add(a)

    @property
    def keys(self) -> list[TableName]:
        return list(self._by_key)

    def table(self, key: TableName) -> Table:
        return self._by_key[key]

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def sort(self, keys) -> list[TableName]:
        """Keys in manifest order (the one order every deterministic choice uses)."""
        return sorted(keys, key=self._order.__getitem__)

    def neighbours(self, key: TableName) -> list[TableName]:
        return self.sort(self._neighbours[key])

    def references(self, key: TableName) -> list[tuple[ForeignKey, Table]]:
        """Foreign keys of ``key`` that point at manifest tables, with the table they point at."""
        out = []
        for fk in self.table(key).foreign_keys:
            target = TableName(fk.ref_schema, fk.ref_table)
            if target in self._by_key and fk.ref_columns:
                out.append((fk, self._by_key[target]))
        return out

    def referenced_by(self, key: TableName) -> list[tuple[Table, ForeignKey]]:
        """Manifest tables whose foreign keys point at ``key``, with the foreign key."""
        return [
            (table, fk)
            for table in self.tables
            for fk in table.foreign_keys
            if TableName(fk.ref_schema, fk.ref_table) == key and fk.ref_columns
        ]

    def link_partner(self, link: Table, fk: ForeignKey) -> Table | None:
        """For a many-to-many link table (film_actor), the table its other foreign key points at (film,
        for the key to actor): counting link rows per actor counts films. None for other tables."""
        others = [f for f in link.foreign_keys if f is not fk]
        if not roles.is_link_table(link) or len(others) != 1:
            return None
        return self._by_key.get(TableName(others[0].ref_schema, others[0].ref_table))

    def tokens(self, key: TableName) -> int:
        return estimate_tokens(self.dictionaries.get(key, ""))

    def resolve(self, name: object) -> TableName | None:
        """The manifest table an LLM meant by ``name`` (``t``, ``schema.t``, quoted or not), or None."""
        if not isinstance(name, str):
            return None
        text = name.strip().strip("`")
        candidates = {text, text.replace('"', "")}
        for key in self._by_key:
            forms = {key.name, f"{key.schema}.{key.name}", key.display, key.qualified}
            if candidates & forms:
                return key
        folded = {c.casefold() for c in candidates}
        matches = [
            key
            for key in self._by_key
            if folded & {key.name.casefold(), f"{key.schema}.{key.name}".casefold()}
        ]
        return matches[0] if len(matches) == 1 else None


def _names_table(view_definition: str, table: Table) -> bool:
    pattern = r"(?<![\w$\"])" + re.escape(quote_ident(table.name)) + r"(?![\w$\"])"
    return re.search(pattern, view_definition) is not None


def language_of(manifest_language: str) -> str:
    return "zh" if manifest_language.lower().startswith("zh") else "en"


def load_schema(output_dir: Path, business_context: str | None = None) -> Schema:
    """The schema of a task's step-1 outputs; ``StepFailed`` when step 1 left nothing to work on."""
    output_dir = Path(output_dir)
    try:
        manifest = load_manifest(output_dir)
    except FileNotFoundError as exc:
        raise StepFailed(str(exc)) from None
    if not manifest.entries:
        raise StepFailed(f"{output_dir}/manifest.json lists no table; step 1 produced nothing to generate pairs from")
    dictionaries: dict[TableName, str] = {}
    for entry in manifest.entries:
        path = output_dir / entry.dictionary_file
        if not path.exists():
            raise StepFailed(f"{path} (listed in manifest.json) is missing; run step 1 (ddl_generation) again")
        dictionaries[table_key(entry.table)] = path.read_text(encoding="utf-8")
    implied = add_implied_foreign_keys(manifest.tables)
    return Schema(
        database=manifest.database,
        language=language_of(manifest.language),
        business_context=manifest.business_context if business_context is None else business_context,
        tables=manifest.tables,
        dictionaries=dictionaries,
        implied_joins=implied,
    )
