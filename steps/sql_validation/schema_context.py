"""What a repair may know about the schema: step 1's tables, their columns and their ``.ddl`` text.

Read from the task's ``manifest.json`` and the DDL files it lists, so a repair sees the same schema
the pairs were generated from. Without a manifest (step 1 not run in this directory) the context is
empty: repairs then work from the database error alone. DDL handed to a prompt is capped in size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from dp.table_list import TableName
from steps.ddl_generation.manifest import ManifestMissing, load_manifest
from steps.ddl_generation.model import Table

log = logging.getLogger(__name__)


@dataclass
class SchemaContext:
    tables: dict[TableName, Table] = field(default_factory=dict)  # in manifest order
    ddl: dict[TableName, str] = field(default_factory=dict)

    @classmethod
    def load(cls, output_dir: Path) -> "SchemaContext":
        """The context of a task's step-1 outputs; empty (with a warning) when there are none."""
        output_dir = Path(output_dir)
        try:
            manifest = load_manifest(output_dir)
        except ManifestMissing as exc:
            log.warning("no schema for repairs: %s", exc)
            return cls()
        context = cls()
        for entry in manifest.entries:
            key = TableName(entry.table.schema, entry.table.name)
            context.tables[key] = entry.table
            path = output_dir / entry.ddl_file
            if path.exists():
                context.ddl[key] = path.read_text(encoding="utf-8").strip()
            else:
                log.warning("%s (listed in manifest.json) is missing; repairs go without it", path)
        return context

    def resolve(self, names: list[tuple[str | None, str]]) -> list[TableName]:
        """The known tables that ``(schema, name)`` pairs from a query mean (no schema: public first)."""
        found: list[TableName] = []
        for schema, name in names:
            if schema is not None:
                matches = [TableName(schema, name)] if TableName(schema, name) in self.tables else []
            else:
                matches = [key for key in self.tables if key.name == name]
                public = [key for key in matches if key.schema == "public"]
                matches = public or matches[:1]
            found.extend(key for key in matches if key not in found)
        return found

    def columns(self, keys: list[TableName]) -> list[str]:
        """Distinct column names of the given tables, in table then column order."""
        names: list[str] = []
        for key in keys:
            for column in self.tables[key].columns:
                if column.name not in names:
                    names.append(column.name)
        return names

    def ddl_for(self, keys: list[TableName], max_chars: int) -> str:
        """DDL of the given tables, or of every table when none is given, within ``max_chars``."""
        blocks = [self.ddl[key] for key in (keys or list(self.tables)) if key in self.ddl]
        text, used = [], 0
        for block in blocks:
            if used + len(block) > max_chars:
                if not text:
                    text.append(block[:max_chars] + "\n-- (cut)")
                break
            text.append(block)
            used += len(block) + 2
        return "\n\n".join(text)
