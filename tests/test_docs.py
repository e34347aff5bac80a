"""The README documents every setting, exactly as dp/settings.py defines it."""

import re
from pathlib import Path

from dp.settings import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_settings_table_matches_code():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", text, re.S)
    assert block, "README lost its settings-table markers"
    assert block.group(1) == settings_table(), "README settings table is stale: run scripts/update-readme"
