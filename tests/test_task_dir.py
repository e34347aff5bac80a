import pytest

from dp.task_dir import backup_previous_outputs
from dp.task_ids import InvalidTaskId, new_task_id, validate_task_id


def test_new_ids_are_valid_and_distinct():
    ids = {new_task_id("task") for _ in range(200)}
    assert len(ids) > 190
    assert all(validate_task_id(i) for i in ids)


@pytest.mark.parametrize("bad", ["..", "../x", "a/b", "", "x" * 41, "%2e%2e", "a b", "/abs", "-lead", "a\\b"])
def test_ids_that_could_escape_are_refused(bad):
    with pytest.raises(InvalidTaskId):
        validate_task_id(bad)


def test_rerun_moves_old_outputs_but_keeps_list_and_log(tmp_path):
    for name in ["table_list.txt", "data_pipeline.log", "film.ddl", "film_detail.md", "manifest.json"]:
        (tmp_path / name).write_text(name)
    (tmp_path / "vector_bak").mkdir()
    backup = backup_previous_outputs(tmp_path)
    assert sorted(p.name for p in backup.iterdir()) == ["film.ddl", "film_detail.md", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["data_pipeline.log", "table_list.txt"]
    (tmp_path / "film.ddl").write_text("again")
    second = backup_previous_outputs(tmp_path)
    assert second != backup and (second / "film.ddl").read_text() == "again"
    assert backup_previous_outputs(tmp_path) is None
