"""The supervisor ends what it started, grandchildren included, and names a child that died."""

import os
import subprocess
import sys
import threading
import time

import psutil

from deployments.prefect_file import REPO_ROOT
from deployments.supervisor import Component, Supervisor

# a child that starts a grandchild, prints its pid and sleeps
PARENT = (
    "import subprocess, sys, time\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
    "print(g.pid, flush=True)\n"
    "time.sleep(120)\n"
)
STUBBORN = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready', flush=True)\ntime.sleep(120)\n"


def _component(name, code, tmp_path):
    return Component(name=name, argv=[sys.executable, "-c", code], env=dict(os.environ), log=tmp_path / f"{name}.log")


def _wait_for_output(path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} stayed empty")


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_ends_children_and_grandchildren(tmp_path):
    with Supervisor(stop_timeout=5) as children:
        child = children.start(_component("parent", PARENT, tmp_path))
        grandchild = int(_wait_for_output(tmp_path / "parent.log"))
        assert not _gone(grandchild)
    assert child.returncode is not None
    assert _gone(child.pid) and _gone(grandchild)


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(tmp_path):
    children = Supervisor(stop_timeout=0.5)
    child = children.start(_component("stubborn", STUBBORN, tmp_path))
    _wait_for_output(tmp_path / "stubborn.log")
    children.stop()
    assert child.returncode == -9 and children.running == []


def test_watch_names_the_child_that_exited(tmp_path):
    with Supervisor(stop_timeout=5) as children:
        children.start(_component("sleeper", "import time; time.sleep(120)", tmp_path))
        children.start(_component("quitter", "import time, sys; time.sleep(0.3); sys.exit(3)", tmp_path))
        component, code = children.watch(threading.Event(), poll_seconds=0.05)
        assert (component.name, code) == ("quitter", 3)


def test_watch_returns_none_when_asked_to_stop(tmp_path):
    stopping = threading.Event()
    with Supervisor(stop_timeout=5) as children:
        children.start(_component("sleeper", "import time; time.sleep(120)", tmp_path))
        threading.Timer(0.2, stopping.set).start()
        assert children.watch(stopping, poll_seconds=0.05) is None


def test_children_die_with_a_killed_supervisor():
    code = (
        "import os, sys, time\n"
        "from deployments.supervisor import Component, Supervisor\n"
        "child = Supervisor().start(Component('c', [sys.executable, '-c', 'import time; time.sleep(120)'], dict(os.environ)))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    child = int(parent.stdout.readline())
    parent.kill()  # no cleanup runs: the kernel's parent-death signal must end the child
    parent.wait()
    try:
        psutil.Process(child).wait(10)
    except psutil.NoSuchProcess:
        pass
    assert _gone(child)
