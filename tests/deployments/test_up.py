"""`data-pipeline up` and `data-pipeline worker` as a user runs them: URLs printed, clean stops, crashes reported."""

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import psutil

from deployments.prefect_file import REPO_ROOT
from dp.cli import main
from tests.prefect_stack import clean_environment, free_port, read_setup_state


def _start(args, env):
    process = subprocess.Popen([sys.executable, "-m", "dp.cli", *args], cwd=REPO_ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    return process, lines


def _read_until(lines, marker, timeout, seen):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        seen.append(line)
        if marker in line:
            return
    raise AssertionError(f"no {marker!r} within {timeout} s; output:\n{''.join(seen)}")


def _drain(lines, seen):
    while not lines.empty():
        seen.append(lines.get())
    return "".join(seen)


def _all_gone(processes):
    return all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes)


def test_up_prints_where_it_listens_and_stops_cleanly_on_sigterm(prefect_stack, prefect_api, tmp_path):
    """`up` runs a second Prefect server on the session stack's database (as a second replica would),
    so its set-up is the second one applied there: it must change nothing."""
    port, api_port = free_port(), free_port()
    env = clean_environment(DP_DATA_DIR=str(tmp_path / "data"), DP_DATABASE_URL=prefect_stack.service_url,
                            DP_PREFECT_PORT=str(port), DP_PREFECT_DATABASE=prefect_stack.settings.prefect_database,
                            DP_API_PORT=str(api_port),
                            DP_ZOMBIE_AFTER_SECONDS=str(prefect_stack.settings.zombie_after_seconds))
    up, lines = _start(["up"], env)
    seen: list[str] = []
    try:
        _read_until(lines, "Stack running", 240, seen)
        output = "".join(seen)
        assert f"Prefect UI:       http://127.0.0.1:{port}\n" in output
        assert f"Prefect API:      http://127.0.0.1:{port}/api" in output
        assert "schema_workflow/on-demand" in output and "worker:" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as reply:
            assert reply.read().strip() == b"true"
        assert f"API and mirror:   http://127.0.0.1:{api_port}\n" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=10) as reply:  # no retry: it is up
            assert json.load(reply)["data"]["prefect"] == "ok"
        pool, deployments, automations = read_setup_state()
        assert pool.id == prefect_stack.applied.work_pool_id
        assert {name: d.id for name, d in deployments.items()} == prefect_stack.applied.deployment_ids
        assert [a.id for a in automations] == [prefect_stack.applied.automation_id]
        assert all(len(d.schedules) == (name.endswith("nightly")) for name, d in deployments.items())
        descendants = psutil.Process(up.pid).children(recursive=True)
        assert len(descendants) >= 2  # the Prefect server and the worker
        up.send_signal(signal.SIGTERM)
        assert up.wait(120) == 0, _drain(lines, seen)
        psutil.wait_procs(descendants, timeout=10)
        assert _all_gone(descendants), [p.cmdline() for p in descendants if p.is_running()]
    finally:
        if up.poll() is None:
            up.kill()


def test_worker_command_reports_a_worker_that_died(prefect_stack):
    env = clean_environment(DP_DATA_DIR=str(prefect_stack.settings.data_dir))
    worker, lines = _start(["worker", "--api-url", prefect_stack.api_url], env)
    seen: list[str] = []
    try:
        _read_until(lines, "Worker polling work pool 'data-pipeline'", 60, seen)
        [child] = psutil.Process(worker.pid).children()
        assert "--pool data-pipeline --type process" in " ".join(child.cmdline())
        child.kill()
        assert worker.wait(60) == 1
        assert "worker exited unexpectedly (exit code -9)" in _drain(lines, seen)
    finally:
        if worker.poll() is None:
            worker.kill()


def test_a_bad_api_url_is_a_usage_error(capsys):
    assert main(["deploy", "--api-url", "localhost:4200"]) == 2
    assert "--api-url must be an http(s) URL" in capsys.readouterr().err


def test_a_signal_while_the_main_thread_holds_the_stop_event_lock_does_not_deadlock():
    """What hung `data-pipeline up` once: SIGTERM handled while the main thread held the event's lock
    (it was inside ``stopping.wait()``, or in the handler of a signal just before)."""
    script = """
import signal
from deployments.stack import stop_on_signals
with stop_on_signals() as stopping:
    handler = signal.getsignal(signal.SIGTERM)
    with stopping._cond:  # the lock Event.wait() and Event.set() take
        handler(signal.SIGTERM, None)
        handler(signal.SIGINT, None)
    assert stopping.wait(10)
print("stopped")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == "stopped\n", done.stderr
