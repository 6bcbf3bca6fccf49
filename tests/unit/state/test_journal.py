"""pgha.log: decisions land in the cluster's own directory, one line each, and nowhere else."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pgha.report.timeline import parse_log
from pgha.state.journal import journal, shown_by

log = logging.getLogger("pgha.tests")


def test_decisions_go_to_the_file_while_the_block_runs_and_not_after(tmp_path: Path) -> None:
    path = tmp_path / "pgha.log"
    log.info("before: nowhere")
    with journal(path, lambda: True):
        log.info("starting DCS member dcs0 (etcd)")
        with journal(path, lambda: True):  # nested: one handler, no line twice
            log.warning("gave up: dcs0 did not answer")
    log.info("after: nowhere")
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("INFO: starting DCS member dcs0 (etcd) [pgha.tests]")
    assert "WARNING: gave up: dcs0 did not answer" in lines[1]
    # The report reads the same lines back, pgha's decisions beside Patroni's.
    parsed = parse_log("pgha", path.read_text(), None)
    assert [(p.kind, p.message) for p in parsed] == [("pgha", "starting DCS member dcs0 (etcd)"),
                                                   ("pgha_gave_up", "gave up: dcs0 did not answer")]
    assert parsed[0].time <= parsed[1].time


def test_nothing_is_written_where_the_directory_is_not_a_cluster_pgha_owns(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    with journal(victim / "pgha.log", lambda: False):
        log.info("refusing to delete")
    assert list(victim.iterdir()) == []
    gone = tmp_path / "purged"
    with journal(gone / "pgha.log", lambda: gone.is_dir()):
        log.info("deleted")
    assert not gone.exists()


def test_a_link_planted_as_pgha_log_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    os.symlink(target, tmp_path / "pgha.log")
    with journal(tmp_path / "pgha.log", lambda: True):
        logging.getLogger("pgha").handlers[-1].handleError = lambda record: None  # type: ignore[method-assign]
        log.info("a decision")
    assert target.read_text() == "precious\n"


def test_the_spinner_sees_the_same_sentences(tmp_path: Path) -> None:
    seen: list[str] = []

    class Spinner(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    with shown_by(Spinner()), journal(tmp_path / "pgha.log", lambda: True):
        log.info("waiting for the DCS to form a quorum")
    assert seen == ["waiting for the DCS to form a quorum"]
    assert (tmp_path / "pgha.log").read_text().count("waiting for the DCS to form a quorum") == 1
