"""Each test runs in a forked process of its own, with a `SHMSEM_DIR` of its own.

The library reads `SHMSEM_DIR` once per process, when the first semaphore is opened; so a
per-test directory takes a fresh process per test. pytest's own process never opens a semaphore:
each test function runs in a child forked from it after the fixtures set `SHMSEM_DIR`, and the
child reports its outcome (a formatted traceback) through a file. A child that dies by a signal,
or is still running after `TEST_SECONDS`, fails its test.
"""

import os
import signal
import sys
import tempfile
import time
import traceback

import pytest

TEST_SECONDS = 60.0


@pytest.fixture(autouse=True)
def shmsem_dir(tmp_path, monkeypatch):
    """A fresh `SHMSEM_DIR` for this test (its forked process inherits it)."""
    path = tmp_path / "shmsem"
    monkeypatch.setenv("SHMSEM_DIR", str(path))
    return path


def _run_child(test, kwargs, report_path):
    """In the forked child: run the test, write the traceback of a failure, and exit."""
    status = 0
    try:
        test(**kwargs)
    except BaseException:  # noqa: BLE001 - everything, KeyboardInterrupt included, is a failure
        status = 1
        with open(report_path, "w") as report:
            report.write(traceback.format_exc())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    fd, report_path = tempfile.mkstemp(prefix="shmsem-test-report-")
    os.close(fd)
    try:
        pid = os.fork()
        if pid == 0:
            _run_child(pyfuncitem.obj, kwargs, report_path)
        deadline = time.monotonic() + TEST_SECONDS
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the test was still running after {TEST_SECONDS} s", pytrace=False)
            time.sleep(0.005)
        with open(report_path) as report:
            failure = report.read()
    finally:
        os.unlink(report_path)
    if os.WIFSIGNALED(status):
        pytest.fail(
            f"the test's process died by signal {signal.Signals(os.WTERMSIG(status)).name}",
            pytrace=False,
        )
    if os.WEXITSTATUS(status) != 0:
        pytest.fail(failure or f"the test's process exited with {os.WEXITSTATUS(status)}", pytrace=False)
    return True
