"""The openai provider over real HTTP against the fake OpenAI server."""

from __future__ import annotations

import json
import re

import pytest

from dp.settings import Settings
from steps.errors import StepFailed
from steps.qa_generation.grouping import group_tables
from steps.qa_generation.schema import load_schema
from steps.qa_generation.step import run_qa_generation
from tests.fakes.openai_server import FakeError, last_user_message

THEMES = {
    "themes": [
        {
            "name": "Film catalogue",
            "description": "Films and their categories",
            "related_tables": ["film", "public.category", "no_such_table"],
            "entities": ["film", "category"],
            "metrics": ["number of films"],
        },
        {"name": "Ghost", "description": "", "related_tables": ["nowhere"], "entities": [], "metrics": []},
        {"name": "Rentals", "related_tables": ["rental", "customer"], "entities": "rental", "metrics": []},
    ]
}
PAIRS = {
    "Film catalogue": [
        {"question": "How many films are there?", "sql": "SELECT count(*)\nFROM film;"},
        {"question": "Two statements", "sql": "SELECT 1; SELECT 2"},
        {"question": "How many films are there ?", "sql": "select count(*) from film"},
        {"question": "Films per rating", "sql": "SELECT rating, count(*) FROM film GROUP BY rating -- per rating"},
    ],
    "Rentals": [{"question": "How many rentals?", "sql": "SELECT count(*) FROM rental"}],
}
SUMMARY = {
    "business_scope": "A DVD rental business.",
    "entities": [{"name": "Film (film)", "fields": ["film_id", "title"]}],
    "metrics": ["rentals per month"],
}


def _kind(prompt: str) -> str:
    if "propose" in prompt:
        return "themes"
    if "router prompt" in prompt:
        return "summary"
    return "pairs"


def _theme_of(prompt: str) -> str:
    return re.search(r"^Theme: (.*)$", prompt, re.M).group(1)


def reply_with(themes, pairs, summary=SUMMARY):
    """A chat handler: ``themes`` for theme prompts, ``pairs(theme name)`` for pair prompts."""

    def answer(body):
        prompt = last_user_message(body)
        kind = _kind(prompt)
        if kind == "themes":
            return themes(prompt) if callable(themes) else themes
        if kind == "summary":
            return summary
        return pairs(_theme_of(prompt))

    return answer


def handler(fail_theme: str | None = None, summary=SUMMARY):
    return reply_with(
        THEMES,
        lambda theme: FakeError(400, message="model refused") if theme == fail_theme else {"pairs": PAIRS[theme]},
        summary,
    )


def _settings(fake, **extra) -> Settings:
    return Settings(llm_provider="openai", llm_base_url=fake.base_url, llm_max_retries=0, **extra)


def test_themes_and_pairs_come_from_the_llm(fake_openai, pagila_step1, tmp_path):
    output_dir = pagila_step1.copy_to(tmp_path / "task")
    fake_openai.chat_handler = handler()
    result = run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai))

    assert result["themes_total"] == 3 and result["themes_succeeded"] == 2
    assert result["themes_failed"] == [
        {"theme": "Ghost", "reason": "names no table of the schema (named: nowhere)"}
    ]
    pairs = json.loads((output_dir / result["pair_file"]).read_text(encoding="utf-8"))
    assert pairs == [
        {"question": "How many films are there?", "sql": "SELECT count(*) FROM film", "theme": "Film catalogue"},
        {"question": "Films per rating", "sql": "SELECT rating, count(*) FROM film GROUP BY rating", "theme": "Film catalogue"},
        {"question": "How many rentals?", "sql": "SELECT count(*) FROM rental", "theme": "Rentals"},
    ]
    assert result["duplicates_removed"] == 1
    metadata = (output_dir / "metadata.txt").read_text(encoding="utf-8")
    assert "ARRAY['film', 'category']" in metadata and "no_such_table" not in metadata
    assert "ARRAY['rental']" in metadata  # a lone string for a list is taken as a list of one
    prompt = (output_dir / "db_query_decision_prompt.txt").read_text(encoding="utf-8")
    assert prompt == (
        "=== Database business scope ===\nA DVD rental business.\n\n=== Core business entities ===\n"
        "- Film (film): main fields film_id, title\n\n=== Key business metrics ===\n- rentals per month\n"
    )
    pair_prompt = next(last_user_message(r) for r in fake_openai.chat_requests if "Theme: Film catalogue" in last_user_message(r))
    assert "PostgreSQL" in pair_prompt and "date_trunc" in pair_prompt and "top-N" in pair_prompt


def test_a_failing_theme_is_recorded_and_the_others_go_on(fake_openai, pagila_step1, tmp_path):
    output_dir = pagila_step1.copy_to(tmp_path / "task")
    fake_openai.chat_handler = handler(fail_theme="Rentals", summary=FakeError(400, message="no summary today"))
    result = run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai))
    failed = {f["theme"]: f["reason"] for f in result["themes_failed"]}
    assert set(failed) == {"Ghost", "Rentals"} and "HTTP 400" in failed["Rentals"]
    assert result["themes_succeeded"] == 1 and result["pairs"] == 2
    assert "Rentals" not in (output_dir / "metadata.txt").read_text(encoding="utf-8")
    # the router summary falls back to the one built from the manifest
    prompt = (output_dir / "db_query_decision_prompt.txt").read_text(encoding="utf-8")
    assert prompt.startswith("=== Database business scope ===\nDVD rental business\n")


def test_no_pair_at_all_fails_the_step(fake_openai, pagila_step1, tmp_path):
    output_dir = pagila_step1.copy_to(tmp_path / "task")
    fake_openai.fail_next(50, 500)
    with pytest.raises(StepFailed, match="no question/SQL pair"):
        run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai))

    fake_openai.reset(chat_handler=reply_with(THEMES, lambda theme: {"pairs": [{"question": "q", "sql": "select 1; select 2"}]}))
    with pytest.raises(StepFailed, match="no usable pair"):
        run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai))
    assert not list(output_dir.glob("qs_*_pair.json"))


_HEADER = re.compile(r"^# ([\w.]+)", re.M)


def test_prompts_carry_only_their_groups_dictionaries(fake_openai, pagila_step1, tmp_path):
    output_dir = pagila_step1.copy_to(tmp_path / "task")
    budget = 2_500
    schema = load_schema(output_dir)
    groups = [{f"{k.schema}.{k.name}" for k in g} for g in group_tables(schema, budget)]
    assert len(groups) > 1

    def themes(prompt):
        first = sorted(_HEADER.findall(prompt))[0].split(".")[1]
        return {"themes": [{"name": f"About {first}", "related_tables": [first]}]}

    fake_openai.chat_handler = reply_with(themes, lambda theme: {"pairs": [{"question": f"{theme}?", "sql": "SELECT 1"}]})
    result = run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai, qa_context_token_budget=budget))
    assert len(result["groups"]) == len(groups) and result["themes_succeeded"] == len(groups)

    prompts = [last_user_message(r) for r in fake_openai.chat_requests]
    theme_prompts = [p for p in prompts if _kind(p) == "themes"]
    assert sorted(sorted(_HEADER.findall(p)) for p in theme_prompts) == sorted(sorted(g) for g in groups)
    for prompt in (p for p in prompts if _kind(p) == "pairs"):
        table = _theme_of(prompt).removeprefix("About ")
        key = next(k for k in schema.keys if k.name == table)
        allowed = {f"public.{table}"} | {f"{n.schema}.{n.name}" for n in schema.neighbours(key)}
        shown = set(_HEADER.findall(prompt))
        assert f"public.{table}" in shown and shown <= allowed


def test_themes_run_concurrently_and_transient_failures_are_chained(fake_openai, chinook_step1, tmp_path):
    output_dir = chinook_step1.copy_to(tmp_path / "task")
    themes = {"themes": [{"name": f"T{i}", "related_tables": ["track"]} for i in range(4)]}
    fake_openai.chat_handler = reply_with(themes, lambda theme: FakeError(503, message="overloaded"))
    fake_openai.latency = 0.2
    with pytest.raises(StepFailed) as failed:
        run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai, qa_theme_concurrency=4))
    assert fake_openai.max_in_flight >= 2
    assert getattr(failed.value.__cause__, "transient", False)  # the flow retries the step


def test_pair_prompt_names_the_identifiers_that_need_quotes(fake_openai, odd_names_step1):
    fake_openai.chat_handler = reply_with(
        {"themes": [{"name": "Orders", "related_tables": ['"Sales"."Order"']}]},
        lambda theme: {"pairs": [{"question": "How many orders?", "sql": 'SELECT count(*) FROM "Sales"."Order"'}]},
    )
    result = run_qa_generation(output_dir=odd_names_step1.output_dir, settings=_settings(fake_openai))
    assert result["pairs"] == 1
    prompt = next(last_user_message(r) for r in fake_openai.chat_requests if _kind(last_user_message(r)) == "pairs")
    quoting = next(line for line in prompt.splitlines() if "double quotes exactly" in line)
    for name in ('"Sales"."Order"', '"Order ID"', '"Ordered At"', '"Sales"."Customer"', '"Full Name"'):
        assert name in quoting
    assert "Related tables: \"Sales\".\"Order\"" in prompt


def test_prompts_name_the_joins_implied_by_column_names(fake_openai, no_foreign_keys_step1):
    fake_openai.chat_handler = reply_with(
        {"themes": [{"name": "Orders", "related_tables": ["shop_order"]}]},
        lambda theme: {"pairs": [{"question": "Orders per member level?", "sql": "SELECT m.level, count(*) FROM "
                                  "shop_order o JOIN member m ON m.member_id = o.member_id GROUP BY m.level"}]},
    )
    result = run_qa_generation(output_dir=no_foreign_keys_step1.output_dir, settings=_settings(fake_openai))
    assert result["pairs"] == 1
    note = "Joins implied by column names (no foreign key declared):\n- shop_order.member_id = member.member_id"
    prompts = {_kind(last_user_message(r)): last_user_message(r) for r in fake_openai.chat_requests}
    assert note in prompts["themes"] and note in prompts["pairs"]


def test_a_dictionary_over_the_budget_is_cut_and_says_so(fake_openai, chinook_step1, tmp_path):
    output_dir = chinook_step1.copy_to(tmp_path / "task")
    budget = 200
    schema = load_schema(output_dir)
    oversized = {f"{k.schema}.{k.name}" for k in schema.keys if schema.tokens(k) > budget}
    assert oversized

    def themes(prompt):
        first = _HEADER.findall(prompt)[0]
        return {"themes": [{"name": f"About {first}", "related_tables": [first]}]}

    fake_openai.chat_handler = reply_with(themes, lambda theme: {"pairs": [{"question": f"{theme}?", "sql": "SELECT 1"}]})
    result = run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai, qa_context_token_budget=budget))
    assert result["themes_succeeded"] == len(result["groups"])
    cut = set()
    for request in fake_openai.chat_requests:
        prompt = last_user_message(request)
        shown = _HEADER.findall(prompt)
        if _kind(prompt) == "themes" and set(shown) & oversized:
            assert len(shown) == 1 and "(cut to fit the prompt budget)" in prompt
            cut.add(shown[0])
    assert cut == oversized
