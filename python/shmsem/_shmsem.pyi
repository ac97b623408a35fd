"""Type stubs of the extension module ``shmsem._shmsem`` (see ``python/src/``)."""

from types import TracebackType
from typing import List, Optional, Tuple, Type, final

__all__ = ["Info", "MAX_CAPACITY", "Party", "Permit", "SLICE_SECONDS", "Semaphore", "__version__"]

MAX_CAPACITY: int
"""The largest capacity a semaphore can have (2**30)."""

SLICE_SECONDS: float
"""The longest one wait lasts before Ctrl-C (and other signal handlers) are looked at."""

__version__: str

@final
class Party:
    """One holder or waiter: a process, its weight, and since when."""

    @property
    def pid(self) -> int: ...
    @property
    def weight(self) -> int: ...
    @property
    def since(self) -> float:
        """When it began, in seconds since the epoch (as ``time.time()``)."""

@final
class Info:
    """A snapshot of a semaphore."""

    @property
    def name(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def kind(self) -> str:
        """``"auto"`` or ``"persistent"``."""
    @property
    def capacity(self) -> int: ...
    @property
    def value(self) -> int:
        """The weight held now."""
    @property
    def available(self) -> int:
        """``capacity - value``, or 0."""
    @property
    def holders(self) -> List[Party]: ...
    @property
    def waiters(self) -> List[Party]: ...

@final
class Permit:
    """Weight held by this process until ``release()`` or the end of a ``with`` block."""

    @property
    def weight(self) -> int: ...
    @property
    def released(self) -> bool: ...
    @property
    def pid(self) -> int:
        """The process that acquired it."""
    def release(self) -> None:
        """Give the weight back; ``NotHeld`` if released already or in a forked child."""
    def __enter__(self) -> "Permit": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

@final
class Semaphore:
    """A named counting semaphore shared between processes (get-or-create)."""

    def __new__(
        cls,
        name: str,
        scope: str = "local",
        namespace: Optional[str] = None,
        capacity: int = 1,
    ) -> "Semaphore": ...
    def acquire(
        self,
        weight: int = 1,
        timeout: Optional[float] = None,
        blocking: bool = True,
    ) -> Permit:
        """Take ``weight``; ``Timeout`` after ``timeout`` seconds, ``WouldBlock`` if not blocking."""
    def release(self, n: int = 1) -> None:
        """Give back ``n`` acquired by this process and not released through a permit."""
    def info(self) -> Info: ...
    @property
    def name(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def capacity(self) -> int: ...
    def __enter__(self) -> None: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def __reduce__(self) -> Tuple[type, Tuple[str, str, str, int]]: ...
