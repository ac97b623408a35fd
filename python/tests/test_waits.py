"""Waiting: trying once, timeouts, the GIL, and Ctrl-C."""

import os
import signal
import threading
import time

import pytest

import shmsem
from helpers import wait_until


def test_blocking_false_on_full_raises_would_block_at_once():
    s = shmsem.Semaphore("wait-try", capacity=1)
    held = s.acquire()
    started = time.monotonic()
    with pytest.raises(shmsem.WouldBlock, match="would block"):
        s.acquire(blocking=False)
    assert time.monotonic() - started < 1.0
    assert s.info().value == 1
    held.release()
    s.acquire(blocking=False).release()


def test_a_timeout_raises_timeout_no_earlier_than_it_says():
    s = shmsem.Semaphore("wait-timeout", capacity=1)
    held = s.acquire()
    started = time.monotonic()
    with pytest.raises(shmsem.Timeout) as raised:
        s.acquire(timeout=0.2)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.2, elapsed
    assert isinstance(raised.value, TimeoutError)
    assert "timed out after 0.2 s" in str(raised.value)
    info = s.info()
    assert (info.value, info.waiters) == (1, [])
    held.release()


def test_a_zero_timeout_tries_once():
    s = shmsem.Semaphore("wait-zero", capacity=1)
    with s:
        with pytest.raises(shmsem.Timeout):
            s.acquire(timeout=0)
    s.acquire(timeout=0).release()


def test_a_wait_sees_weight_released_by_another_thread():
    s = shmsem.Semaphore("wait-thread", capacity=1)
    held = s.acquire()
    threading.Timer(0.1, held.release).start()
    with s.acquire(timeout=10):
        assert s.info().value == 1
    assert s.info().value == 0


def test_waiting_releases_the_gil():
    # The helper thread runs Python only if the waiting thread lets go of the GIL: it waits to
    # see the main thread queued, counts, and then releases the weight the main thread waits for.
    s = shmsem.Semaphore("wait-gil", capacity=1)
    held = s.acquire()
    counter = [0]

    def helper():
        wait_until(lambda: len(s.info().waiters) == 1, what="the main thread waiting")
        while counter[0] < 100_000:
            counter[0] += 1
        held.release()

    thread = threading.Thread(target=helper)
    thread.start()
    with s.acquire(timeout=20):
        assert counter[0] == 100_000
    thread.join(10)


def _interrupt_after(seconds, before=None):
    """SIGINT to this process after `seconds` (after calling `before`), from a timer thread."""
    # Python's own handler, which raises KeyboardInterrupt: a process started in the background
    # by a shell inherits SIGINT ignored, and Python then installs none.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def fire():
        if before is not None:
            before()
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Timer(seconds, fire)
    timer.start()
    return timer


def test_ctrl_c_interrupts_a_wait_and_leaves_nothing_held():
    s = shmsem.Semaphore("wait-sigint", capacity=1)
    held = s.acquire()
    before = s.info()
    timer = _interrupt_after(0.2)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        s.acquire()  # as long as it takes: only the signal ends it
    assert time.monotonic() - started < 10
    timer.join()
    after = s.info()
    assert after.value == before.value == 1
    assert [(h.pid, h.weight) for h in after.holders] == [(os.getpid(), 1)]
    assert after.waiters == []
    held.release()
    assert s.info().value == 0


def test_ctrl_c_as_the_wait_succeeds_gives_the_weight_back():
    # The weight comes free and SIGINT arrives at once: whichever the wait sees first, the
    # KeyboardInterrupt leaves nothing of this acquire held.
    s = shmsem.Semaphore("wait-sigint-race", capacity=1)
    for _ in range(5):
        held = s.acquire()
        timer = _interrupt_after(0.05, before=held.release)
        with pytest.raises(KeyboardInterrupt):
            s.acquire(timeout=10)
            time.sleep(10)  # got it before the signal: the signal interrupts this instead
        timer.join()
        info = s.info()
        if info.value:
            # The acquire returned before the signal was seen: its permit is held, not lost.
            s.release(1)
        assert s.info().value == 0 and s.info().holders == []


def test_ctrl_c_in_with_leaves_nothing_held():
    s = shmsem.Semaphore("wait-sigint-with", capacity=1)
    held = s.acquire()
    timer = _interrupt_after(0.2)
    with pytest.raises(KeyboardInterrupt):
        with s:
            pytest.fail("the with block must not be entered")
    timer.join()
    held.release()
    info = s.info()
    assert (info.value, info.holders, info.waiters) == (0, [], [])
