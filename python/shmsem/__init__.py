"""Named counting semaphores shared between the processes of one Linux machine.

A semaphore has a capacity; an acquire takes a weight, waits (with a timeout in seconds, as in
:mod:`threading`) and the weight comes back when released, or when the holding process dies,
even by ``SIGKILL``::

    import shmsem

    s = shmsem.Semaphore("backend", scope="local", capacity=2)   # get-or-create
    with s:                                       # weight 1
        ...
    with s.acquire(weight=2, timeout=1.5):        # raises shmsem.Timeout (a TimeoutError)
        ...
    p = s.acquire(blocking=False)                 # raises shmsem.WouldBlock when full
    p.release()
    s.info()                                      # capacity, value, holders, waiters

Scopes: ``"self"`` (this process tree), ``"local"`` (this user), ``"global"`` (the machine).
``SHMSEM_DIR``, when set before the first semaphore of the process is opened, moves every
scope's files. A process forked (as by :mod:`multiprocessing`) holds nothing its parent held:
releasing its copy of a parent's permit raises :class:`NotHeld` and changes nothing.
"""

from ._errors import (
    AlreadyExists,
    Busy,
    Corrupt,
    Error,
    InvalidArgument,
    InvalidName,
    NotFound,
    NotHeld,
    PermissionDenied,
    Removed,
    TableFull,
    Timeout,
    WeightTooLarge,
    WouldBlock,
)
from ._shmsem import MAX_CAPACITY, SLICE_SECONDS, Info, Party, Permit, Semaphore, __version__

SCOPES = ("self", "local", "global")
"""The scope names ``Semaphore`` accepts."""

# Written out, exceptions too (not `*_errors.__all__`): type checkers and stubtest read
# `__all__` without running it.
__all__ = [
    "Semaphore",
    "Permit",
    "Info",
    "Party",
    "SCOPES",
    "MAX_CAPACITY",
    "SLICE_SECONDS",
    "Error",
    "Timeout",
    "WouldBlock",
    "InvalidName",
    "InvalidArgument",
    "WeightTooLarge",
    "NotHeld",
    "PermissionDenied",
    "NotFound",
    "AlreadyExists",
    "Removed",
    "Busy",
    "TableFull",
    "Corrupt",
    "__version__",
]
