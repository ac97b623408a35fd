"""examples/gunicorn_backend_limit.py answers through a fake WSGI environ."""

import importlib.util
import multiprocessing
import pathlib

import shmsem

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "gunicorn_backend_limit.py"
fork = multiprocessing.get_context("fork")


def load_example():
    spec = importlib.util.spec_from_file_location("gunicorn_backend_limit", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.BACKEND_SECONDS = 0.0
    module.WAIT_SECONDS = 0.2
    return module


def call(app):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.url_scheme": "http"}
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_the_example_answers_while_a_slot_is_free():
    example = load_example()
    assert call(example.app) == ("200 OK", {"Content-Type": "text/plain"}, b"the backend answered\n")
    s = example.backend_semaphore()
    assert (s.name, s.namespace, s.capacity) == ("slow-backend", "gunicorn-example", 2)
    assert s.info().value == 0


def test_the_example_answers_503_while_other_workers_hold_both_slots():
    example = load_example()
    held = fork.Event()
    done = fork.Event()

    def other_worker():
        with shmsem.Semaphore("slow-backend", namespace="gunicorn-example", capacity=2).acquire(weight=2):
            held.set()
            done.wait(30)

    worker = fork.Process(target=other_worker)
    worker.start()
    assert held.wait(30)
    status, headers, body = call(example.app)
    assert status == "503 Service Unavailable" and headers["Retry-After"] == "1", (status, body)
    done.set()
    worker.join(30)
    assert worker.exitcode == 0
    assert call(example.app)[0] == "200 OK"
