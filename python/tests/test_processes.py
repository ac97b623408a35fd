"""Several processes: capacity, a SIGKILLed holder, and the fork rule."""

import multiprocessing
import os
import signal
import time

import pytest

import shmsem
from helpers import wait_until

fork = multiprocessing.get_context("fork")


def test_capacity_two_admits_two_of_three_processes():
    s = shmsem.Semaphore("proc-cap", capacity=2)
    inside = fork.Value("i", 0)
    peak = fork.Value("i", 0)
    leave = fork.Event()

    def worker():
        with s:
            with inside.get_lock():
                inside.value += 1
                peak.value = max(peak.value, inside.value)
            leave.wait(30)
            with inside.get_lock():
                inside.value -= 1

    procs = [fork.Process(target=worker) for _ in range(3)]
    for p in procs:
        p.start()
    wait_until(lambda: inside.value == 2, what="two workers inside")
    wait_until(lambda: len(s.info().waiters) == 1, what="the third worker waiting")
    time.sleep(0.2)
    info = s.info()
    assert (inside.value, info.value, len(info.holders)) == (2, 2, 2)
    leave.set()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert peak.value == 2
    assert s.info().value == 0


def test_capacity_two_is_never_exceeded_under_churn():
    s = shmsem.Semaphore("proc-churn", capacity=2)
    inside = fork.Value("i", 0)
    peak = fork.Value("i", 0)

    def worker():
        for _ in range(50):
            with s:
                with inside.get_lock():
                    inside.value += 1
                    peak.value = max(peak.value, inside.value)
                time.sleep(0.001)
                with inside.get_lock():
                    inside.value -= 1

    procs = [fork.Process(target=worker) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert 1 <= peak.value <= 2
    assert s.info().value == 0


def test_a_sigkilled_holders_weight_comes_back():
    s = shmsem.Semaphore("proc-kill", capacity=2)
    held = fork.Event()

    def holder():
        s.acquire(weight=2)
        held.set()
        time.sleep(60)

    child = fork.Process(target=holder)
    child.start()
    assert held.wait(30)
    info = s.info()
    assert info.value == 2
    assert [(h.pid, h.weight) for h in info.holders] == [(child.pid, 2)]
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    with s.acquire(weight=2, timeout=10):
        assert [(h.pid, h.weight) for h in s.info().holders] == [(os.getpid(), 2)]
    assert s.info().value == 0


def test_a_forked_child_cannot_release_its_parents_permit():
    s = shmsem.Semaphore("proc-fork", capacity=3)
    permit = s.acquire()
    outcome = fork.Queue()

    def child():
        mine = s.acquire()  # the child holds weight of its own through the same handle
        try:
            permit.release()
            results = ["released"]
        except shmsem.NotHeld:
            results = ["NotHeld"]
        results.append(s.info().value)
        mine.release()  # its own permit is its own to release
        results.append(s.info().value)
        outcome.put(results)

    p = fork.Process(target=child)
    p.start()
    results = outcome.get(timeout=30)
    p.join(30)
    assert p.exitcode == 0
    assert results == ["NotHeld", 2, 1]
    info = s.info()
    assert info.value == 1, "the parent's weight is still held"
    assert [(h.pid, h.weight) for h in info.holders] == [(os.getpid(), 1)]
    permit.release()
    assert s.info().value == 0


def test_a_forked_child_with_nothing_of_its_own_releases_nothing():
    s = shmsem.Semaphore("proc-fork-empty", capacity=2)
    permit = s.acquire(weight=2)
    pid = os.fork()
    if pid == 0:
        code = 0
        for release in (permit.release, lambda: s.release(1), lambda: s.__exit__(None, None, None)):
            try:
                release()
                code = 1  # a release in the child must not succeed
            except shmsem.NotHeld:
                pass
            except BaseException:
                code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    info = s.info()
    assert info.value == 2
    assert [(h.pid, h.weight) for h in info.holders] == [(os.getpid(), 2)]
    permit.release()
    assert s.info().value == 0
