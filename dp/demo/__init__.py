"""The demo business database: a highway service-area operations system (高速公路服务区管理系统).

Our own sample, independent of the shared datasets: a schema written like a real Chinese ERP (mixed
commented and uncommented tables, enum-like columns of three kinds, a composite key, a view, a second
schema) and a few thousand deterministic rows. ``data-pipeline demo`` loads it and runs a task on it
with the table list and business context below.
"""

from __future__ import annotations

from pathlib import Path

from dp.demo.loader import DEMO_DATABASE, DemoDatabaseError, load_demo_database

DEMO_BUSINESS_CONTEXT = "高速公路服务区管理系统：运营公司、路段、服务区、档口商户、每日营业数据与车辆流量统计"
TABLE_LIST_FILE = Path(__file__).resolve().parent / "table_list.txt"

__all__ = ["DEMO_BUSINESS_CONTEXT", "DEMO_DATABASE", "DemoDatabaseError", "demo_table_list", "load_demo_database"]


def demo_table_list() -> str:
    """The demo's table list in the table-list format (comments, comma lines, a schema-qualified name)."""
    return TABLE_LIST_FILE.read_text(encoding="utf-8")
