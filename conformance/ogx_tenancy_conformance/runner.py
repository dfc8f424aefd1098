"""The suite's own event loop, so its async tests need no setting on the user's side.

pytest-asyncio only runs coroutine tests in its ``auto`` mode or when they are marked, and a shipped
suite cannot rely on either (STYLE.md pitfall 8). The suite's async test bodies and fixtures run on
one event loop in a background thread instead: the collected test functions are plain synchronous
functions, whatever plugin or mode the user's pytest has. Stores opened in a fixture and used in a
test share that loop, as drivers such as asyncpg require.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# Generous: a real database or server behind a test may be slow on a loaded machine. A test that
# hangs past this fails with a clear message instead of blocking the run.
DEFAULT_TIMEOUT_S = 300.0


class LoopRunner:
    """An asyncio loop running forever in a daemon thread; ``run`` executes a coroutine on it."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ogx-tenancy-conformance-loop", daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def run(self, awaitable: Awaitable[T], timeout: float = DEFAULT_TIMEOUT_S) -> T:
        """Run ``awaitable`` on the suite's loop and return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopRunner.run called from the suite's own loop; await instead")

        async def wrapper() -> T:
            return await awaitable

        future = asyncio.run_coroutine_threadsafe(wrapper(), self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"conformance step did not finish within {timeout:.0f} s") from None

    def close(self) -> None:
        if self._loop.is_closed():
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._loop.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._loop.close()


_runner: LoopRunner | None = None
_runner_lock = threading.Lock()


def loop_runner() -> LoopRunner:
    """The process's suite loop, started on first use."""
    global _runner
    with _runner_lock:
        if _runner is None or _runner.loop.is_closed():
            _runner = LoopRunner()
        return _runner


def close_loop_runner() -> None:
    global _runner
    with _runner_lock:
        if _runner is not None:
            _runner.close()
            _runner = None


def run_sync[R](function: Callable[..., Coroutine[Any, Any, R]]) -> Callable[..., R]:
    """Turn an ``async def`` test into a synchronous one that runs on the suite's loop.

    The signature is kept (pytest reads fixture names from it) but the result is a plain function,
    so neither pytest nor pytest-asyncio treats it as a coroutine test.
    """
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"{function.__qualname__} is not an async function")

    @functools.wraps(function)
    def synchronous(*args: Any, **kwargs: Any) -> R:
        return loop_runner().run(function(*args, **kwargs))

    return synchronous
