"""Small helpers of the tests: waiting for a condition, with a deadline."""

import time


def wait_until(condition, seconds=10.0, what="the condition"):
    """Poll `condition` until it is true; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.005)
