"""Security of the API: the optional API key, and every way of reaching a path outside a task's
directory (``..``, absolute paths, encoded slashes and dots, symbolic links, odd task ids,
server-side input files) refused with nothing read or removed."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest

from dp.task_dir import TABLE_LIST_NAME
from tests.service.api.conftest import wait_started, with_password

SECRET_TEXT = "top-secret-content-42"


def _params(url: str, **more) -> dict:
    return {"parameters": {"db_connection": with_password(url), "business_context": "DVD rental store", **more}}


@pytest.fixture
def outside(tmp_path):
    """A directory beside the output root with a file nobody may read or remove through the API."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text(SECRET_TEXT)
    return directory


@pytest.fixture
def task_with_files(client, pagila_url, output_root, outside):
    task_id = client.post("/tasks", json=_params(pagila_url, tables=["film"])).json()["data"]["task_id"]
    wait_started(client, task_id)
    assert client.post(f"/tasks/{task_id}/cancel").status_code == 202
    task_dir = output_root / task_id
    (task_dir / "sub").mkdir()
    (task_dir / "sub" / "note.md").write_text("# note\n")
    (task_dir / "link_to_secret.txt").symlink_to(outside / "secret.txt")
    (task_dir / "linked_dir").symlink_to(outside, target_is_directory=True)
    return task_id


def test_api_key_guards_everything_but_health(make_client):
    client = make_client(api_key="s3cret-key")
    assert client.get("/tasks").status_code == 401
    assert client.get("/tasks", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/tasks", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/tasks", headers={"X-API-Key": "s3cret-key"}).status_code == 200
    assert client.get("/tasks", headers={"Authorization": "Bearer s3cret-key"}).status_code == 200
    assert client.post("/tasks/task_20250101_000000_0000/cancel").status_code == 401
    assert client.get("/health").status_code == 200
    assert client.get("http://testserver/health").status_code == 200
    assert client.get("http://testserver/docs").status_code == 200


def test_files_list_and_download_stay_inside_the_task(client, task_with_files, output_root):
    task_id = task_with_files
    files = client.get(f"/tasks/{task_id}/files").json()["data"]["files"]
    names = {f["name"] for f in files}
    assert names == {TABLE_LIST_NAME, "sub/note.md"}  # links are not listed
    note = next(f for f in files if f["name"] == "sub/note.md")
    assert note["size"] == 7 and len(note["sha256"]) == 64 and note["type"] == "md"
    reply = client.get(f"/tasks/{task_id}/files/download/sub/note.md")
    assert reply.status_code == 200 and reply.text == "# note\n"
    assert "attachment" in reply.headers["content-disposition"]
    assert client.get(f"/tasks/{task_id}/files/{TABLE_LIST_NAME}").text == "public.film\n"


@pytest.mark.parametrize("name", [
    "link_to_secret.txt", "linked_dir/secret.txt", "..%2F..%2Foutside%2Fsecret.txt", "%2e%2e/%2e%2e/outside/secret.txt",
    "%2E%2E%2F%2E%2E%2Foutside%2Fsecret.txt", "%2Fetc%2Fpasswd", "/etc/passwd", "sub/..%2F..%2F..%2Foutside/secret.txt",
    "..%5C..%5Coutside%5Csecret.txt", "sub%00.md", "sub/%2e/note.md", "sub//note.md", "", "sub",
])
def test_download_refuses_escapes(client, task_with_files, name):
    for route in ("files/download", "files"):
        reply = client.get(f"/tasks/{task_with_files}/{route}/{name}")
        assert reply.status_code in (400, 404), (name, reply.status_code)
        assert SECRET_TEXT not in reply.text


def test_download_over_the_limit_answers_413(make_client, task_with_files, output_root):
    client = make_client(max_download_bytes=3)
    reply = client.get(f"/tasks/{task_with_files}/files/download/sub/note.md")
    assert reply.status_code == 413 and reply.json()["data"]["limit_bytes"] == 3


@pytest.mark.parametrize("task_id", ["..", "%2e%2e", ".hidden", "a.b", "a%2Fb", "a%5Cb", "x" * 41, "t%00x", "%E4%BB%BB",
                                     "-leading-dash"])
def test_odd_task_ids_are_refused_before_any_file_access(client, task_id, output_root, outside):
    for method, path in (("GET", ""), ("GET", "/files"), ("GET", "/files/download/secret.txt"), ("DELETE", ""),
                         ("GET", "/table-list-info"), ("POST", "/cancel"), ("GET", "/logs"), ("GET", "/events")):
        reply = client.request(method, f"/tasks/{task_id}{path}")
        assert reply.status_code in (400, 404), (method, task_id, path, reply.status_code)
        if reply.status_code == 400:
            assert "task_id" in reply.json()["data"]["invalid_params"]
        assert SECRET_TEXT not in reply.text
    assert (outside / "secret.txt").read_text() == SECRET_TEXT and output_root.is_dir()


def _raw_get(base_url: str, path: str) -> tuple[int, str]:
    """A request whose path is sent byte for byte (httpx would resolve the dots first)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path + path)
        reply = conn.getresponse()
        return reply.status, reply.read().decode(errors="replace")
    finally:
        conn.close()


def test_literal_dot_segments_are_refused_by_the_running_server(live_api, pagila_url):
    with live_api.client() as client:
        task_id = client.post("/tasks", json=_params(pagila_url)).json()["data"]["task_id"]
        try:
            secret_dir = live_api.output_root.parent / "outside"
            secret_dir.mkdir(exist_ok=True)
            (secret_dir / "secret.txt").write_text(SECRET_TEXT)
            for path in (f"/tasks/{task_id}/files/../../outside/secret.txt",
                         f"/tasks/{task_id}/files/download/../../../outside/secret.txt",
                         f"/tasks/{task_id}/files/download/./../{task_id}/../../outside/secret.txt",
                         "/tasks/../../outside/secret.txt", f"/tasks/{task_id}/files/download//etc/passwd"):
                status, text = _raw_get(live_api.url, path)
                assert status in (400, 404), (path, status)
                assert SECRET_TEXT not in text and "root:" not in text
        finally:
            assert client.delete(f"/tasks/{task_id}").status_code == 200


def test_table_list_file_is_confined_to_the_allowed_directories(make_client, pagila_url, tmp_path, outside, output_root):
    allowed = tmp_path / "lists"
    allowed.mkdir()
    (allowed / "tables.txt").write_text("film\nactor\n")
    (allowed / "escape.txt").symlink_to(outside / "secret.txt")
    (allowed / "inner_link.txt").symlink_to(allowed / "tables.txt")
    client = make_client(allowed_input_dirs=[allowed])
    for name in (str(outside / "secret.txt"), "../outside/secret.txt", "escape.txt", str(allowed / "missing.txt"),
                 str(allowed), "/etc/passwd", "tables.txt\x00.md"):
        reply = client.post("/tasks", json=_params(pagila_url, table_list_file=name))
        assert reply.status_code == 400, (name, reply.json())
        assert "parameters.table_list_file" in reply.json()["data"]["invalid_params"]
        assert SECRET_TEXT not in reply.text
    assert not list(output_root.iterdir())
    for name in ("tables.txt", str(allowed / "tables.txt"), "inner_link.txt"):
        reply = client.post("/tasks", json=_params(pagila_url, table_list_file=name, execution_mode="single",
                                                   single_step=1))
        assert reply.status_code == 201, reply.json()
        task_id = reply.json()["data"]["task_id"]
        assert (output_root / task_id / TABLE_LIST_NAME).read_text() == "film\nactor\n"
        _delete_when_stopped(client, task_id)


def _delete_when_stopped(client, task_id: str, timeout: float = 120.0) -> None:
    """DELETE answers 409 while the task's run is still stopping (slow under load); ask again until it is gone."""
    deadline = time.monotonic() + timeout
    while (reply := client.delete(f"/tasks/{task_id}")).status_code == 409 and time.monotonic() < deadline:
        time.sleep(1)
    assert reply.status_code == 200, reply.json()


def test_output_dir_inside_the_root_is_used(client, pagila_url, output_root):
    reply = client.post("/tasks", json=_params(pagila_url, output_dir="team_a"))
    task_id = reply.json()["data"]["task_id"]
    assert reply.json()["data"]["output_directory"] == str(output_root / "team_a" / task_id)
    assert (output_root / "team_a" / task_id).is_dir()
    assert client.delete(f"/tasks/{task_id}").json()["data"]["directory_removed"]
    assert (output_root / "team_a").is_dir() and not (output_root / "team_a" / task_id).exists()
