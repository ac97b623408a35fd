"""The exceptions of shmsem.

Every error is a :class:`Error`; where a builtin exception fits, the class is also that builtin,
so ``except TimeoutError`` or ``except ValueError`` catch what they should.
"""


class Error(Exception):
    """Base class of every shmsem error."""


class Timeout(Error, TimeoutError):
    """A timed acquire reached its deadline without getting the weight it asked for."""


class WouldBlock(Error):
    """``acquire(blocking=False)`` found too little weight available."""


class InvalidName(Error, ValueError):
    """A semaphore or namespace name breaks the naming rule (1 to 200 bytes of [A-Za-z0-9._-])."""


class InvalidArgument(Error, ValueError):
    """A weight, capacity or count out of range (such as a weight of 0)."""


class WeightTooLarge(InvalidArgument):
    """An acquire asked for more weight than the capacity: it could never be granted."""


class NotHeld(Error, RuntimeError):
    """A release of weight this process does not hold: a permit released twice, a parent's
    permit released in a forked child, or ``Semaphore.release(n)`` beyond what was acquired.
    Nothing changes."""


class PermissionDenied(Error, PermissionError):
    """The operating system refused access to the namespace's files."""


class NotFound(Error, FileNotFoundError):
    """No semaphore or namespace of that name exists."""


class AlreadyExists(Error, FileExistsError):
    """A semaphore of that name exists already."""


class Removed(Error):
    """The semaphore was removed while this handle was open; open it again."""


class Busy(Error):
    """A lock of the namespace stayed held by another process too long, or a removal found the
    semaphore held."""


class TableFull(Error):
    """A fixed-size table of the namespace is full."""


class Corrupt(Error):
    """The segment holds something this version cannot read; nothing was changed."""


__all__ = [
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
]

# Shown as shmsem.Timeout (not shmsem._errors.Timeout) in tracebacks and reprs.
for _name in __all__:
    globals()[_name].__module__ = "shmsem"
del _name
