"""What step 2 produces: themes (business topics over a few tables) and question/SQL pairs.

A theme's ``related_tables`` are always tables of the manifest (providers resolve names before
building one), the most central first. A pair's ``theme`` is its theme's (unique) name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dp.table_list import TableName


@dataclass
class Theme:
    name: str
    description: str
    related_tables: list[TableName]
    entities: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QAPair:
    question: str
    sql: str
    theme: str

    def to_dict(self) -> dict[str, str]:
        return {"question": self.question, "sql": self.sql, "theme": self.theme}


@dataclass
class ThemeFailure:
    theme: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"theme": self.theme, "reason": self.reason}
