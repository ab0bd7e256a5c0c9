"""`profiled_function`: time the functions called under an entry point (a request handler,
a job) and log them in one line when the entry returns."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("dockyard.profile")


@dataclass
class Profile:
    entry: str
    calls: list[tuple[str, float]] = field(default_factory=list)


_profile: ContextVar[Profile | None] = ContextVar("dockyard_profile", default=None)


class _Timing:
    """Around one call: opens a profile for an entry, or adds the call to the open one."""

    def __init__(self, name: str, entry: bool) -> None:
        self.name = name
        self.profile = _profile.get()
        self.owns = entry and self.profile is None
        if self.owns:
            self.profile = Profile(name)
            self.token = _profile.set(self.profile)
        self.started = time.perf_counter()

    def done(self) -> None:
        elapsed_ms = round((time.perf_counter() - self.started) * 1000, 3)
        if self.profile is None:
            return
        self.profile.calls.append((self.name, elapsed_ms))
        if self.owns:
            _profile.reset(self.token)
            calls = [{"function": name, "ms": ms} for name, ms in self.profile.calls]
            log.info("profile of %s: %.3f ms", self.name, elapsed_ms, extra={"profile": calls})


@overload
def profiled_function(func: F, *, entry: bool = False) -> F: ...
@overload
def profiled_function(func: None = None, *, entry: bool = False) -> Callable[[F], F]: ...


def profiled_function(func: F | None = None, *, entry: bool = False) -> F | Callable[[F], F]:
    """Decorate sync or async functions; `entry=True` marks where a profile starts and is
    logged. Calls outside any entry cost one context variable read. Signatures are kept."""

    def decorate(target: F) -> F:
        name = f"{target.__module__}.{target.__qualname__}"
        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                timing = _Timing(name, entry)
                try:
                    return await target(*args, **kwargs)
                finally:
                    timing.done()

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(target)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            timing = _Timing(name, entry)
            try:
                return target(*args, **kwargs)
            finally:
                timing.done()

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate
