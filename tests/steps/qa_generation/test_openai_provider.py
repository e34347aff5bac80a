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


def handler(fail_theme: str | None = None):
    def answer(body):
        prompt = last_user_message(body)
        kind = _kind(prompt)
        if kind == "themes":
            return THEMES
        if kind == "summary":
            return SUMMARY
        theme = _theme_of(prompt)
        if theme == fail_theme:
            return FakeError(400, message="model refused")
        return {"pairs": PAIRS[theme]}

    return answer


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
    fake_openai.chat_handler = handler(fail_theme="Rentals")
    result = run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai))
    failed = {f["theme"]: f["reason"] for f in result["themes_failed"]}
    assert set(failed) == {"Ghost", "Rentals"} and "HTTP 400" in failed["Rentals"]
    assert result["themes_succeeded"] == 1 and result["pairs"] == 2
    assert "Rentals" not in (output_dir / "metadata.txt").read_text(encoding="utf-8")


def test_no_pair_at_all_fails_the_step(fake_openai, pagila_step1, tmp_path):
    output_dir = pagila_step1.copy_to(tmp_path / "task")
    fake_openai.fail_next(50, 500)
    with pytest.raises(StepFailed, match="no question/SQL pair"):
        run_qa_generation(output_dir=output_dir, settings=_settings(fake_openai))

    fake_openai.reset(chat_handler=lambda body: THEMES if _kind(last_user_message(body)) == "themes" else {"pairs": [{"question": "q", "sql": "select 1; select 2"}]})
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

    def answer(body):
        prompt = last_user_message(body)
        kind = _kind(prompt)
        if kind == "themes":
            first = sorted(_HEADER.findall(prompt))[0].split(".")[1]
            return {"themes": [{"name": f"About {first}", "related_tables": [first]}]}
        if kind == "summary":
            return SUMMARY
        return {"pairs": [{"question": f"{_theme_of(prompt)}?", "sql": "SELECT 1"}]}

    fake_openai.chat_handler = answer
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
