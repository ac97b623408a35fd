"""The type stubs match the extension module (mypy's stubtest compares them)."""

import importlib.util
import subprocess
import sys


def test_the_stubs_match_the_module():
    assert importlib.util.find_spec("mypy") is not None, (
        "mypy is needed to check the stubs: pip install mypy"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "shmsem"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
