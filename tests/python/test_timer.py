"""Timers: one-shot, repeat, run_now, cancel (also from another thread)."""

import gc
import threading
import time
import weakref

import pytest

from cymongoose import Manager

from conftest import poll_until


def test_one_shot(mgr):
    hits = []
    t = mgr.timer_add(20, lambda: hits.append(time.monotonic()))
    assert t.active
    start = time.monotonic()
    poll_until(mgr, lambda: hits)
    assert hits[0] - start >= 0.015
    assert not t.active
    for _ in range(5):
        mgr.poll(10)
    assert len(hits) == 1


def test_repeat_and_cancel(mgr):
    hits = []
    t = mgr.timer_add(5, lambda: hits.append(1), repeat=True)
    poll_until(mgr, lambda: len(hits) >= 3)
    assert t.active
    t.cancel()
    assert not t.active
    n = len(hits)
    for _ in range(5):
        mgr.poll(10)
    assert len(hits) == n
    t.cancel()  # idempotent


def test_run_now(mgr):
    hits = []
    t = mgr.timer_add(10_000, lambda: hits.append(1), repeat=True, run_now=True)
    mgr.poll(0)
    assert hits == [1]
    mgr.poll(0)
    assert hits == [1]
    t.cancel()


def test_cancel_from_inside_callback(mgr):
    hits = []
    box = {}

    def cb():
        hits.append(1)
        if len(hits) == 2:
            box["t"].cancel()

    box["t"] = mgr.timer_add(1, cb, repeat=True)
    poll_until(mgr, lambda: len(hits) == 2)
    for _ in range(5):
        mgr.poll(5)
    assert len(hits) == 2 and not box["t"].active


def test_cancel_from_another_thread_while_polling(mgr):
    hits = []
    t = mgr.timer_add(2, lambda: hits.append(1), repeat=True)
    poll_until(mgr, lambda: len(hits) >= 2)
    done = threading.Event()

    def canceller():
        time.sleep(0.05)  # the main thread is inside poll(200), waiting without the GIL
        t.cancel()
        done.set()

    th = threading.Thread(target=canceller)
    th.start()
    while not done.is_set():
        mgr.poll(200)
    th.join()
    assert not t.active
    n = len(hits)
    for _ in range(10):
        mgr.poll(5)
    assert len(hits) == n


def test_discarded_timer_still_fires(mgr):
    hits = []
    mgr.timer_add(1, lambda: hits.append(1))  # return value dropped
    gc.collect()
    poll_until(mgr, lambda: hits)


def test_timer_exception_goes_to_error_handler():
    errors = []
    with Manager(error_handler=errors.append) as m:
        hits = []

        def boom():
            hits.append(1)
            raise ValueError("timer failed")

        t = m.timer_add(1, boom, repeat=True)
        poll_until(m, lambda: len(hits) >= 2)  # still repeating after the exception
        t.cancel()
    assert isinstance(errors[0], ValueError)


def test_close_ends_timers():
    hits = []
    m = Manager()
    t = m.timer_add(1, lambda: hits.append(1), repeat=True)
    m.close()
    assert not t.active
    t.cancel()
    assert hits == []
    r = weakref.ref(m)
    del m
    gc.collect()
    assert r() is None  # a finished timer does not keep its manager alive


def test_bad_arguments(mgr):
    with pytest.raises(ValueError):
        mgr.timer_add(-1, lambda: None)
    with pytest.raises(TypeError):
        mgr.timer_add(10, "not callable")
    with pytest.raises(TypeError):
        mgr.timer_add(1.5, lambda: None)
    with pytest.raises(TypeError):
        mgr.timer_add(10, lambda: None, True)  # repeat is keyword-only
