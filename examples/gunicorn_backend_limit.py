"""A WSGI app whose gunicorn workers share one semaphore of capacity 2 for a slow backend.

However many workers gunicorn starts, at most two requests call the backend at once; a request
that cannot get a slot within ``WAIT_SECONDS`` gets ``503 Service Unavailable`` with
``Retry-After`` instead of piling up. A worker killed while calling the backend (by gunicorn's
timeout, or the OOM killer) gives its slot back at once, which a POSIX semaphore would leak.

Run it (from the repository's root)::

    pip install ./python gunicorn
    gunicorn --workers 8 --bind 127.0.0.1:8000 --chdir examples gunicorn_backend_limit:app
    for i in $(seq 8); do curl -s 127.0.0.1:8000/ & done; wait
    shmsem show --namespace gunicorn-example slow-backend   # holders and waiters, meanwhile

Each worker opens the semaphore at its first request (opening it in gunicorn's master with
``--preload`` works too: a forked worker holds nothing its master held).
"""

import time

import shmsem

#: The most requests that call the backend at once, across every worker.
BACKEND_SLOTS = 2
#: How long a request waits for a slot before it is answered 503.
WAIT_SECONDS = 5.0
#: How long the stand-in backend takes.
BACKEND_SECONDS = 0.5

_semaphore = None


def backend_semaphore():
    """This process's handle on the semaphore, opened (or created) on first use."""
    global _semaphore
    if _semaphore is None:
        _semaphore = shmsem.Semaphore(
            "slow-backend", scope="local", namespace="gunicorn-example", capacity=BACKEND_SLOTS
        )
    return _semaphore


def call_backend():
    """The slow backend: a stand-in that sleeps."""
    time.sleep(BACKEND_SECONDS)
    return b"the backend answered\n"


def app(environ, start_response):
    """The WSGI application."""
    try:
        with backend_semaphore().acquire(timeout=WAIT_SECONDS):
            body = call_backend()
    except shmsem.Timeout:
        start_response(
            "503 Service Unavailable",
            [("Content-Type", "text/plain"), ("Retry-After", "1")],
        )
        return [b"the backend is busy; try again\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
