import json
import random

import pytest

from dp.database import connection
from dp.llm.client import ChatClient, LLMError
from dp.settings import get_settings
from dp.table_list import TableName
from steps.ddl_generation.comments import (
    HeuristicCommenter,
    OpenAICommenter,
    choose_language,
    make_commenter,
)
from steps.ddl_generation.introspect import introspect
from steps.ddl_generation.model import Column, Constraint, ForeignKey, Table
from tests.fakes.openai_server import comment_reply, last_user_message


def read_table(url: str, name: str) -> Table:
    """The facts step 1 reads for one pagila table."""
    table_name = TableName("public", name)
    with connection(url) as conn:
        return introspect(conn, [table_name]).relations[table_name].table


def orders_table() -> Table:
    return Table(
        schema="sales",
        name="orders",
        comment=None,
        columns=[
            Column("order_id", "integer", nullable=False),
            Column("customer_id", "integer", samples=["17", "42", "99", "123"]),
            Column("status", "character varying(10)", enum_values=["new", "paid", "shipped"]),
            Column("total_amt", "numeric(10,2)", comment="订单总金额（元）"),
            Column("created_at", "timestamp without time zone"),
        ],
        constraints=[Constraint("orders_pkey", "primary_key", ["order_id"], "PRIMARY KEY (order_id)")],
        foreign_keys=[
            ForeignKey("orders_customer_fk", ["customer_id"], "sales", "customer", ["id"], "FOREIGN KEY ...")
        ],
    )


def commenter_for(fake, **client_options) -> OpenAICommenter:
    options = dict(base_url=fake.base_url, api_key=None, model="m", timeout=5, max_retries=1,
                   max_concurrency=2, backoff_base=0.01)
    options.update(client_options)
    return OpenAICommenter(ChatClient(**options))


# --- language ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "context, setting, expected",
    [
        ("DVD 租赁公司的业务数据库", "auto", "zh"),
        ("A DVD rental shop", "auto", "en"),
        ("", "auto", "en"),
        ("DVD 租赁公司", "en", "en"),
        ("A DVD rental shop", "zh", "zh"),
    ],
)
def test_choose_language(context, setting, expected):
    assert choose_language(context, setting) == expected


def test_choose_language_rejects_unknown_setting():
    with pytest.raises(ValueError, match="auto, zh or en"):
        choose_language("x", "fr")


# --- heuristic -----------------------------------------------------------------------------


def test_heuristic_on_pagila_customer(pagila_url):
    table = read_table(pagila_url, "customer")
    zh = HeuristicCommenter().comment_table(table, business_context="DVD 租赁", language="zh")
    assert zh.table_comment == "客户表"
    assert set(zh.columns) == {c.name for c in table.columns}
    assert zh.columns["customer_id"] == "客户编号（主键）"
    assert zh.columns["address_id"] == "地址编号（关联地址表）"
    assert zh.columns["last_update"] == "最后更新时间"
    assert zh.columns["activebool"] == "是否有效"
    assert zh.columns["first_name"] == "名"
    en = HeuristicCommenter().comment_table(table, business_context="", language="en")
    assert en.table_comment == "Customer table"
    assert en.columns["store_id"] == "Store ID (references store)"
    assert en.columns["create_date"] == "Create date"
    assert en == HeuristicCommenter().comment_table(table, business_context="", language="en")  # deterministic


def test_heuristic_link_table_view_and_generic_names(pagila_url):
    commenter = HeuristicCommenter()
    film_actor = commenter.comment_table(read_table(pagila_url, "film_actor"), business_context="", language="zh")
    assert film_actor.table_comment == "演员与电影关联表"
    assert film_actor.columns["film_id"] == "电影编号（联合主键之一，关联电影表）"
    view = commenter.comment_table(read_table(pagila_url, "actor_info"), business_context="", language="zh")
    assert view.table_comment == "演员信息视图"
    film = commenter.comment_table(read_table(pagila_url, "film"), business_context="", language="en")
    assert film.columns["title"] == "Film title"
    assert film.columns["fulltext"] == "Full-text search"


def test_heuristic_enum_boolean_and_time_hints():
    table = orders_table()
    table.columns += [
        Column("rating", "public.mpaa_rating", enum_values=["G", "PG", "PG-13", "R", "NC-17", "X"]),
        Column("gift", "boolean"),
        Column("shipped", "date"),
    ]
    zh = HeuristicCommenter().comment_table(table, business_context="", language="zh")
    assert zh.columns["status"] == "订单状态（取值：new、paid、shipped）"
    assert zh.columns["rating"] == "评级（取值：G、PG、PG-13、R、NC-17等）"
    assert zh.columns["gift"] == "是否礼品"
    assert zh.columns["shipped"] == "发货日期"
    en = HeuristicCommenter().comment_table(table, business_context="", language="en")
    assert en.columns["status"] == "Order status (one of new, paid, shipped)"
    assert en.columns["gift"] == "Whether gift"
    assert en.columns["shipped"] == "Shipped date"


def test_existing_comments_are_never_touched():
    table = orders_table()
    table.comment = "订单"
    result = HeuristicCommenter().comment_table(table, business_context="", language="zh")
    assert result.table_comment is None
    assert "total_amt" not in result.columns
    assert set(result.columns) == {"order_id", "customer_id", "status", "created_at"}


# --- OpenAI-compatible ---------------------------------------------------------------------


def test_openai_prompt_carries_the_facts_and_asks_only_for_missing(fake_openai):
    fake_openai.chat_handler = comment_reply
    result = commenter_for(fake_openai).comment_table(orders_table(), business_context="网上商城", language="zh")
    assert result.table_comment == "orders comment"
    assert result.columns == {n: f"{n} comment" for n in ["order_id", "customer_id", "status", "created_at"]}
    assert result.fallback_columns == [] and not result.fallback_table
    [request] = fake_openai.chat_requests
    assert "Simplified Chinese" in request["messages"][0]["content"]
    text = last_user_message(request)
    facts = json.loads(text[text.index("{"):])
    assert facts["business_context"] == "网上商城"
    assert facts["columns_to_comment"] == ["order_id", "customer_id", "status", "created_at"]
    by_name = {c["name"]: c for c in facts["columns"]}
    assert by_name["customer_id"]["samples"] == ["17", "42", "99"]
    assert by_name["customer_id"]["references"] == "sales.customer.id"
    assert by_name["status"]["enum_values"] == ["new", "paid", "shipped"]
    assert by_name["total_amt"]["comment"] == "订单总金额（元）"
    assert by_name["order_id"]["primary_key"] is True


def test_openai_matches_by_name_ignores_unknown_and_commented(fake_openai):
    def shuffled(body):
        reply = comment_reply(body)
        names = list(reply["columns"])
        random.Random(7).shuffle(names)
        columns = {name: reply["columns"][name] for name in names}
        columns["no_such_column"] = "invented"
        columns["total_amt"] = "must not overwrite"
        columns["CREATED_AT"] = "duplicate in other case"
        return {"columns": columns, "table_comment": reply["table_comment"]}

    fake_openai.chat_handler = shuffled
    result = commenter_for(fake_openai).comment_table(orders_table(), business_context="", language="en")
    assert result.columns == {n: f"{n} comment" for n in ["order_id", "customer_id", "status", "created_at"]}


def test_openai_case_folded_names_and_list_shape(fake_openai):
    fake_openai.chat_handler = lambda body: {
        "table_comment": "Orders",
        "columns": [{"name": "ORDER_ID", "comment": "Order number"}, {"name": "status", "comment": "Order state"}],
    }
    result = commenter_for(fake_openai).comment_table(orders_table(), business_context="", language="en")
    assert result.columns["order_id"] == "Order number"
    assert result.columns["status"] == "Order state"


def test_openai_left_out_columns_get_heuristic_comments_recorded(fake_openai):
    fake_openai.chat_handler = lambda body: {"table_comment": "", "columns": {"status": "订单状态"}}
    result = commenter_for(fake_openai).comment_table(orders_table(), business_context="", language="zh")
    assert result.columns["status"] == "订单状态"
    assert result.columns["order_id"] == "订单编号（主键）"
    assert result.fallback_columns == ["order_id", "customer_id", "created_at"]
    assert result.fallback_table and result.table_comment == "订单表"


def test_openai_cleans_think_blocks_labels_quotes_and_long_answers(fake_openai):
    long_zh = "客户的唯一编号，用于关联客户表中的客户记录以及历史订单"
    fake_openai.chat_handler = lambda body: {
        "table_comment": "<think>用户要表注释</think>表注释：“订单主表”。",
        "columns": {
            "order_id": "order_id: 订单编号",
            "customer_id": long_zh,
            "status": "'订单状态'\n",
            "created_at": "<think>hmm</think>",
        },
    }
    result = commenter_for(fake_openai).comment_table(orders_table(), business_context="", language="zh")
    assert result.table_comment == "订单主表"
    assert result.columns["order_id"] == "订单编号"
    assert result.columns["customer_id"] == "客户的唯一编号"
    assert result.columns["status"] == "订单状态"
    assert result.fallback_columns == ["created_at"]


def test_openai_cuts_english_at_a_word_boundary(fake_openai):
    words = "The customer who placed the order, as recorded in the customer master data of the shop"
    fake_openai.chat_handler = lambda body: {"table_comment": "Orders", "columns": {"customer_id": words}}
    result = commenter_for(fake_openai).comment_table(orders_table(), business_context="", language="en")
    assert result.columns["customer_id"] == "The customer who placed the order"


@pytest.mark.parametrize("reply", ["no JSON here at all", ["a", "list"], {"table_comment": 5, "columns": {}}, {"x": 1}])
def test_openai_garbage_is_an_llm_error_after_one_reask(fake_openai, reply):
    fake_openai.chat_handler = lambda body: reply
    with pytest.raises(LLMError, match="after one re-ask"):
        commenter_for(fake_openai).comment_table(orders_table(), business_context="", language="en")
    assert len(fake_openai.chat_requests) == 2


def test_openai_no_call_when_nothing_is_missing(fake_openai):
    table = orders_table()
    table.comment = "订单"
    for column in table.columns:
        column.comment = "有注释"
    result = commenter_for(fake_openai).comment_table(table, business_context="", language="zh")
    assert result.table_comment is None and result.columns == {}
    assert fake_openai.requests == []


def test_make_commenter_follows_the_provider_setting(fake_openai, monkeypatch):
    assert isinstance(make_commenter(), HeuristicCommenter)
    monkeypatch.setenv("DP_LLM_PROVIDER", "openai")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="DP_LLM_BASE_URL"):
        make_commenter()
    monkeypatch.setenv("DP_LLM_BASE_URL", fake_openai.base_url)
    get_settings.cache_clear()
    commenter = make_commenter()
    assert isinstance(commenter, OpenAICommenter)
    fake_openai.chat_handler = comment_reply
    assert commenter.comment_table(orders_table(), business_context="", language="en").table_comment == "orders comment"
