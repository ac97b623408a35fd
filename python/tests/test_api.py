"""The API of one process: opening, holding, releasing, info, errors."""

import math
import os
import pickle

import pytest

import shmsem


def test_with_holds_weight_one_and_gives_it_back():
    s = shmsem.Semaphore("api-with", capacity=3)
    assert (s.name, s.scope, s.namespace, s.capacity) == ("api-with", "local", "default", 3)
    with s:
        info = s.info()
        assert (info.capacity, info.value, info.available) == (3, 1, 2)
        assert [(h.pid, h.weight) for h in info.holders] == [(os.getpid(), 1)]
    assert s.info().value == 0


def test_acquire_returns_a_permit_that_is_a_context_manager():
    s = shmsem.Semaphore("api-permit", capacity=3)
    with s.acquire(weight=2, timeout=1.5) as permit:
        assert isinstance(permit, shmsem.Permit)
        assert (permit.weight, permit.pid, permit.released) == (2, os.getpid(), False)
        assert s.info().value == 2
    assert permit.released
    assert s.info().value == 0
    p = s.acquire(blocking=False)
    p.release()
    assert s.info().value == 0


def test_info_has_the_documented_attributes():
    s = shmsem.Semaphore("api-info", scope="local", namespace="ns1", capacity=2)
    with s.acquire():
        info = s.info()
    assert (info.name, info.scope, info.namespace, info.kind) == ("api-info", "local", "ns1", "auto")
    assert info.waiters == []
    (holder,) = info.holders
    assert holder.pid == os.getpid() and holder.weight == 1
    assert isinstance(holder.since, float) and holder.since > 1e9


def test_get_or_create_keeps_the_existing_capacity():
    shmsem.Semaphore("api-goc", capacity=2)
    assert shmsem.Semaphore("api-goc", capacity=5).capacity == 2


@pytest.mark.parametrize("capacity", [2, 3])
def test_each_test_has_its_own_shmsem_dir(capacity, shmsem_dir):
    # Both runs open the same name: with a shared directory the second would find the first's.
    s = shmsem.Semaphore("api-isolation", capacity=capacity)
    assert s.capacity == capacity
    assert os.environ["SHMSEM_DIR"] == str(shmsem_dir)
    assert any(shmsem_dir.iterdir()), "the semaphore's files are in this test's SHMSEM_DIR"


@pytest.mark.parametrize("scope", shmsem.SCOPES)
def test_every_scope_opens(scope):
    s = shmsem.Semaphore("api-scope", scope=scope)
    assert s.scope == scope
    with s:
        assert s.info().value == 1


@pytest.mark.parametrize("name", ["", "a b", "a/b", ".", "..", "x" * 201, "é"])
def test_bad_names_raise_value_error(name):
    with pytest.raises(ValueError) as raised:
        shmsem.Semaphore(name)
    assert isinstance(raised.value, shmsem.InvalidName)
    assert "invalid name" in str(raised.value)


def test_bad_namespace_raises_value_error():
    with pytest.raises(shmsem.InvalidName):
        shmsem.Semaphore("ok", namespace="no/slash")


def test_bad_scope_raises_value_error():
    with pytest.raises(ValueError, match="invalid scope 'tree'|invalid scope \"tree\""):
        shmsem.Semaphore("ok", scope="tree")


def test_the_cluster_scope_says_this_build_has_none():
    # The package is built without the library's feature `cluster`: a typed error, not a crash.
    with pytest.raises(shmsem.Error, match="cluster"):
        shmsem.Semaphore("ok", scope="cluster")


@pytest.mark.parametrize("capacity", [0, -1, shmsem.MAX_CAPACITY + 1, 2**40])
def test_bad_capacities_raise_value_error(capacity):
    with pytest.raises(ValueError):
        shmsem.Semaphore("ok", capacity=capacity)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"weight": 0}, shmsem.InvalidArgument),
        ({"weight": -1}, ValueError),
        ({"weight": 3}, shmsem.WeightTooLarge),
        ({"timeout": -1.0}, ValueError),
        ({"timeout": math.nan}, ValueError),
        ({"timeout": 1.0, "blocking": False}, ValueError),
    ],
)
def test_bad_acquire_arguments_raise_value_error(kwargs, error):
    s = shmsem.Semaphore("api-args", capacity=2)
    with pytest.raises(error) as raised:
        s.acquire(**kwargs)
    assert isinstance(raised.value, ValueError)
    assert s.info().value == 0


def test_a_permit_released_twice_raises_not_held_and_changes_nothing():
    s = shmsem.Semaphore("api-twice", capacity=2)
    first = s.acquire()
    second = s.acquire()
    first.release()
    with pytest.raises(shmsem.NotHeld, match="released already"):
        first.release()
    assert s.info().value == 1, "the second permit's weight is still held"
    second.release()
    with pytest.raises(RuntimeError):  # NotHeld is a RuntimeError, as threading's over-release
        second.release()
    assert s.info().value == 0


def test_semaphore_release_gives_back_what_acquire_took():
    s = shmsem.Semaphore("api-release", capacity=2)
    s.acquire(weight=2)  # the permit is dropped: the weight stays held
    assert s.info().value == 2
    s.release(2)
    assert s.info().value == 0
    with pytest.raises(shmsem.NotHeld):
        s.release()
    assert s.info().value == 0


def test_exceptions_are_shmsem_errors_and_builtins():
    pairs = [
        (shmsem.Timeout, TimeoutError),
        (shmsem.InvalidName, ValueError),
        (shmsem.InvalidArgument, ValueError),
        (shmsem.WeightTooLarge, shmsem.InvalidArgument),
        (shmsem.NotHeld, RuntimeError),
        (shmsem.PermissionDenied, PermissionError),
        (shmsem.NotFound, FileNotFoundError),
        (shmsem.AlreadyExists, FileExistsError),
    ]
    for cls, builtin in pairs:
        assert issubclass(cls, shmsem.Error) and issubclass(cls, builtin), cls
    for cls in (shmsem.WouldBlock, shmsem.Removed, shmsem.Busy, shmsem.TableFull, shmsem.Corrupt):
        assert issubclass(cls, shmsem.Error), cls
    assert shmsem.Timeout.__module__ == "shmsem"


def test_a_semaphore_pickles_as_its_name_and_reopens():
    s = shmsem.Semaphore("api-pickle", scope="local", namespace="ns2", capacity=4)
    again = pickle.loads(pickle.dumps(s))
    assert (again.name, again.scope, again.namespace, again.capacity) == ("api-pickle", "local", "ns2", 4)
    with again:
        assert s.info().value == 1


def test_permission_denied_is_a_permission_error(shmsem_dir):
    shmsem_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(shmsem_dir, 0o700)
    if os.geteuid() == 0:
        # Root is never refused: this test's own process becomes `nobody` (it is forked for
        # this test alone, see conftest.py), to whom the root-owned 0700 directory is closed.
        os.setgid(65534)
        os.setuid(65534)
    else:
        os.chmod(shmsem_dir, 0o500)
    with pytest.raises(PermissionError) as raised:
        shmsem.Semaphore("api-denied")
    assert isinstance(raised.value, shmsem.PermissionDenied)
