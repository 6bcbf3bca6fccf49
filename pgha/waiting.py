"""One wait-until loop for every "poll until it holds or time runs out" in pgha."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def never() -> bool:
    return False


def wait_until(predicate: Callable[[], T], timeout: float, every: float = 0.2,
               cancelled: Callable[[], bool] = never, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> T | None:
    """Call `predicate` every `every` seconds until it returns something truthy (returned) or
    `timeout` seconds have passed (None). The predicate runs at least once, and once more at the
    deadline, so a condition that became true during the last sleep is not reported as a timeout.
    `cancelled()` returning True raises KeyboardInterrupt (Ctrl-C as a flag, checked each round).
    """
    deadline = clock() + timeout
    while True:
        if cancelled():
            raise KeyboardInterrupt
        result = predicate()
        if result:
            return result
        left = deadline - clock()
        if left <= 0:
            return None
        sleep(min(every, left))
