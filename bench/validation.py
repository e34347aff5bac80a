"""Throughput of step 3 against a plain psycopg2 loop doing the same database work.

Generates 2,000 varied SELECTs over pagila (about one in ten broken: a misspelled column or an
unknown table), then times, in the same run and with the same concurrency (threads and pool size):

* ours: ``run_sql_validation`` on a pair file (guard, read-only transaction with timeout, EXPLAIN,
  reports; repair and file rewriting off, since the plain loop does neither);
* plain: a ``ThreadedConnectionPool`` loop sending each query as it is, with the same protocol as
  ours: autocommit sessions, ``BEGIN READ ONLY; SET LOCAL statement_timeout = ...; EXPLAIN ...`` in
  one message, the ``LIMIT 1`` run when on, then ``ROLLBACK``. Its time includes opening and closing
  its connections, as ours does.

Both are measured twice: EXPLAIN only (execution check off), and EXPLAIN plus the ``LIMIT 1`` run in
both. Each figure is the best of ``--repeat`` alternating runs. Target: ours >= 80% of plain.

The guard (sqlglot parse and AST check) is CPU work the plain loop does not do, and on a machine
whose cores the database already keeps busy it cannot hide behind the round trips (measured: the
guard in a separate process alongside the plain loop took as long as the two one after the
other). So the script also prints the ceiling ``plain / (plain + guard alone)``: the best ratio
any guarded validator could reach here, and how close ours comes to it.

    .venv/bin/python bench/validation.py [--pairs 2000] [--concurrency 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import sqlglot.tokenizer_core
from psycopg2.pool import ThreadedConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dp.database import connection  # noqa: E402
from dp.sample_databases import load_sample_database  # noqa: E402
from dp.settings import Settings  # noqa: E402
from steps.sql_validation.guard import GuardRejected, guard_sql  # noqa: E402
from steps.sql_validation.step import run_sql_validation  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TIMEOUT_MS = 5000
NUMERIC = ("integer", "smallint", "bigint", "numeric")


def read_schema(url: str) -> tuple[dict[str, list[tuple[str, str]]], list[tuple[str, str, str, str]]]:
    """Columns ``{table: [(column, type)]}`` and single-column foreign keys ``(table, column, ref, ref_column)``."""
    with connection(url) as conn:
        cur = conn.cursor()
        cur.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
        )
        tables: dict[str, list[tuple[str, str]]] = {}
        for table, column, type_ in cur.fetchall():
            tables.setdefault(table, []).append((column, type_))
        cur.execute(
            "SELECT c.relname, a.attname, r.relname, ra.attname FROM pg_constraint k "
            "JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid "
            "JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] "
            "JOIN pg_attribute ra ON ra.attrelid = k.confrelid AND ra.attnum = k.confkey[1] "
            "WHERE k.contype = 'f' AND cardinality(k.conkey) = 1 AND NOT c.relispartition"
        )
        foreign_keys = [fk for fk in cur.fetchall() if fk[0] in tables and fk[2] in tables]
    return tables, foreign_keys


def generate_queries(url: str, n: int, seed: int = 42, broken_share: float = 0.1) -> list[str]:
    """``n`` different SELECTs over pagila: filters, joins, aggregates, CTEs, windows, set operations."""
    tables, foreign_keys = read_schema(url)
    rng = random.Random(seed)
    names = sorted(tables)

    def cols(table: str, numeric: bool | None = None) -> list[str]:
        return [c for c, t in tables[table] if numeric is None or any(t.startswith(k) for k in NUMERIC) == numeric]

    def simple() -> str:
        t = rng.choice(names)
        picked = rng.sample(cols(t), min(len(cols(t)), rng.randint(1, 3)))
        nums = cols(t, True)
        where = f" WHERE {rng.choice(nums)} > {rng.randint(0, 50)}" if nums else ""
        return f"SELECT {', '.join(picked)} FROM {t}{where} ORDER BY 1 LIMIT {rng.randint(1, 100)}"

    def join() -> str:
        t, c, r, rc = rng.choice(foreign_keys)
        a, b = rng.choice(cols(t)), rng.choice(cols(r))
        return f"SELECT x.{a}, y.{b} FROM {t} x JOIN {r} y ON y.{rc} = x.{c} WHERE x.{c} > {rng.randint(0, 20)}"

    def aggregate() -> str:
        t = rng.choice([t for t in names if cols(t, True)])
        g, v = rng.choice(cols(t)), rng.choice(cols(t, True))
        fn = rng.choice(["sum", "avg", "max", "min", "count"])
        return f"SELECT {g}, {fn}({v}) FROM {t} GROUP BY {g} HAVING count(*) >= {rng.randint(1, 3)}"

    def cte() -> str:
        t, c, r, rc = rng.choice(foreign_keys)
        return (
            f"WITH agg AS (SELECT {c} AS k, count(*) AS n FROM {t} GROUP BY {c}) "
            f"SELECT y.{rng.choice(cols(r))}, agg.n FROM agg JOIN {r} y ON y.{rc} = agg.k ORDER BY agg.n DESC LIMIT 10"
        )

    def window() -> str:
        t = rng.choice([t for t in names if cols(t, True)])
        p, o = rng.choice(cols(t)), rng.choice(cols(t, True))
        return f"SELECT {p}, {o}, rank() OVER (PARTITION BY {p} ORDER BY {o} DESC) FROM {t} LIMIT {rng.randint(5, 50)}"

    def union() -> str:
        a, b = rng.sample(names, 2)
        return f"SELECT {rng.choice(cols(a))}::text AS v FROM {a} UNION SELECT {rng.choice(cols(b))}::text FROM {b}"

    def broken() -> str:
        sql = rng.choice([simple, join, aggregate])()
        if rng.random() < 0.5:
            return sql.replace(" FROM ", " FROM missing_", 1)
        word = rng.choice([w for w in sql.replace(",", " ").replace("(", " ").replace(")", " ").split() if "_" in w])
        return sql.replace(word, word[:-1] + "q", 1)

    makers = [simple, join, aggregate, cte, window, union]
    queries: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < n:
        sql = broken() if rng.random() < broken_share else rng.choice(makers)()
        if sql not in queries:
            queries.add(sql)
            ordered.append(sql)
    return ordered


def plain_loop(url: str, queries: list[str], concurrency: int, execute: bool) -> float:
    """Seconds for the same EXPLAINs (and LIMIT 1 runs) through a bare pool, no guard, no reports."""
    started = time.perf_counter()
    pool = ThreadedConnectionPool(concurrency, concurrency, url)
    for conn in pool._pool:  # all opened above (minconn = maxconn)
        conn.autocommit = True
    explain = f"BEGIN READ ONLY; SET LOCAL statement_timeout = {TIMEOUT_MS}; EXPLAIN (FORMAT TEXT) "

    def one(sql: str) -> None:
        conn = pool.getconn()
        try:
            with conn.cursor() as cur:
                cur.execute(explain + sql)
                if execute:
                    cur.execute("SELECT * FROM (\n" + sql + "\n) AS q LIMIT 1")
                    cur.fetchone()
        except psycopg2.Error:
            pass
        finally:
            with conn.cursor() as cur:
                cur.execute("ROLLBACK")
            pool.putconn(conn)

    with ThreadPoolExecutor(max_workers=concurrency) as threads:
        list(threads.map(one, queries))
    pool.closeall()
    return time.perf_counter() - started


def ours(url: str, queries: list[str], concurrency: int, execute: bool) -> tuple[float, dict]:
    settings = Settings(validation_concurrency=concurrency, validation_execute=execute, validation_timeout_ms=TIMEOUT_MS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "qs_pagila_20260101_000000_pair.json"
        path.write_text(json.dumps([{"question": f"q{i}", "sql": q} for i, q in enumerate(queries)]))
        started = time.perf_counter()
        result = run_sql_validation(db_url=url, output_dir=Path(tmp), repair=False, modify_file=False, settings=settings)
        return time.perf_counter() - started, result


def guard_cost_ms(queries: list[str]) -> float:
    """Single-threaded milliseconds the guard spends per statement (pure CPU, under the GIL)."""
    started = time.perf_counter()
    for sql in queries:
        try:
            guard_sql(sql)
        except GuardRejected:
            pass
    return (time.perf_counter() - started) * 1000 / len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)

    url = load_sample_database("pagila", ADMIN_URL)
    queries = generate_queries(url, args.pairs)
    compiled = not getattr(sqlglot.tokenizer_core, "__file__", ".py").endswith(".py")
    print(f"{len(queries)} pairs over pagila, concurrency {args.concurrency} (threads = pool size), best of {args.repeat}")
    guard_ms = guard_cost_ms(queries)
    print(f"guard: {guard_ms:.2f} ms per statement, sqlglot {sqlglot.__version__} "
          f"({'compiled, sqlglotc' if compiled else 'pure Python'})")
    for execute in (False, True):
        ours_best, plain_best, result = float("inf"), float("inf"), {}
        for _ in range(args.repeat):
            plain_best = min(plain_best, plain_loop(url, queries, args.concurrency, execute))
            elapsed, result = ours(url, queries, args.concurrency, execute)
            ours_best = min(ours_best, elapsed)
        mode = "EXPLAIN + LIMIT 1 run (the step's default)" if execute else "EXPLAIN only (DP_VALIDATION_EXECUTE=false)"
        ratio = plain_best / ours_best
        ceiling = plain_best / (plain_best + guard_ms * len(queries) / 1000)
        print(
            f"{mode}: ours {len(queries) / ours_best:7.0f} pairs/s, plain loop {len(queries) / plain_best:7.0f} "
            f"pairs/s, ratio {ratio:.2f} ({'meets' if ratio >= 0.8 else 'misses'} the 0.80 target; "
            f"ceiling with the guard {ceiling:.2f}); {result['valid']} valid, {result['invalid']} invalid"
        )


if __name__ == "__main__":
    main()
