"""The shared small pieces: wait_until and the private-file writer."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pgha.state.files import write_file
from pgha.waiting import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_returns_the_first_truthy_value() -> None:
    clock = FakeClock()
    answers = iter([None, 0, "leader"])
    assert wait_until(lambda: next(answers), 10, every=1, clock=clock, sleep=clock.sleep) == "leader"
    assert clock.sleeps == [1, 1]


def test_wait_until_times_out_with_none_after_a_last_try_at_the_deadline() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def predicate() -> bool:
        calls.append(clock.now)
        return False

    assert wait_until(predicate, 1.0, every=0.4, clock=clock, sleep=clock.sleep) is None
    assert calls == pytest.approx([0.0, 0.4, 0.8, 1.0])


def test_wait_until_stops_when_cancelled() -> None:
    clock = FakeClock()
    with pytest.raises(KeyboardInterrupt):
        wait_until(lambda: False, 10, every=1, cancelled=lambda: clock.now >= 2, clock=clock, sleep=clock.sleep)
    assert clock.now == pytest.approx(2.0)


def test_write_file_is_private_from_the_start_and_tightens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("old")
    path.chmod(0o644)
    write_file(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_file(tmp_path / "public", "x", 0o644)
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644
