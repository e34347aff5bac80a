import json

from dp.embeddings.local import local_embedder
from steps.training_load.items import collect_items, make_item
from tests.steps.training_load.factories import PAIRS, write_pairs, write_task_files


def test_ids_depend_on_task_model_kind_and_text_only():
    base = dict(task_id="t", model_id="m", kind="ddl", document="CREATE TABLE a (x int);", source="a.ddl")
    item = make_item(**base)
    assert item.id == make_item(**{**base, "source": "moved.ddl"}).id
    assert item.id.endswith("-ddl") and item.metadata["id"] == item.id
    for change in ({"task_id": "u"}, {"model_id": "n"}, {"document": "CREATE TABLE b (x int);"}):
        assert make_item(**{**base, **change}).id != item.id
    assert make_item(**{**base, "kind": "documentation"}).id.endswith("-doc")


def test_collects_every_source_and_skips_bad_entries_and_duplicates(tmp_path):
    pairs = PAIRS[:2] + [PAIRS[0], {"question": "no sql"}, "not an object", {"question": " ", "sql": "SELECT 1"}]
    task = write_task_files(tmp_path, pairs=pairs, manifest=False)
    collected = collect_items(task, "t", local_embedder(32))

    assert collected.skipped_pairs == 3 and collected.duplicates == 1
    kinds = [item.kind for item in collected.items]
    assert kinds.count("ddl") == 3 and kinds.count("documentation") == 4 and kinds.count("sql") == 2
    assert {i.table for i in collected.items if i.kind == "ddl"} == {"public.film", "public.actor", "public.film_actor"}
    sources = {i.metadata["source"] for i in collected.items}
    assert "metadata_detail.md" in sources and "qs_testdb_20260101_100000_pair.json" in sources
    pair = next(i for i in collected.items if i.kind == "sql")
    assert json.loads(pair.document) == {"question": PAIRS[0]["question"], "sql": PAIRS[0]["sql"]}
    assert pair.metadata["theme"] == "catalogue"


def test_a_broken_pair_file_is_a_problem_not_an_empty_list(tmp_path):
    task = write_task_files(tmp_path)
    write_pairs(task, []).write_text("[{broken", encoding="utf-8")
    collected = collect_items(task, "t", local_embedder(32))
    assert collected.pair_file_failed and collected.problems[0]["file"].startswith("qs_testdb_")
    assert not [i for i in collected.items if i.kind == "sql"]
