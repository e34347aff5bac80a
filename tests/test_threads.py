"""Work handed to a ContextThreadPool sees the context variables of the thread that handed it over."""

import contextvars

from dp.threads import ContextThreadPool

RUN = contextvars.ContextVar("RUN", default=None)


def test_workers_see_the_submitting_thread_s_context():
    token = RUN.set("flow-run-1")
    try:
        with ContextThreadPool(max_workers=3) as pool:
            seen = list(pool.map(lambda _: RUN.get(), range(12)))
            assert pool.submit(RUN.get).result() == "flow-run-1"
    finally:
        RUN.reset(token)
    assert seen == ["flow-run-1"] * 12


def test_a_worker_s_changes_stay_in_its_own_copy():
    with ContextThreadPool(max_workers=2) as pool:
        assert pool.submit(lambda: RUN.set("inside") and RUN.get()).result() == "inside"
    assert RUN.get() is None
