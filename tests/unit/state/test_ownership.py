"""pgha deletes a directory only when it created it: each layer of that rule refuses on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgha.state.ownership import (
    MARKER,
    NotOursError,
    create_cluster_dir,
    is_ours,
    remove_cluster_dir,
    remove_scratch_dir,
    scratch_dir,
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("keep\n")
    h = tmp_path / "clusters"
    h.mkdir()
    return h


def test_a_created_cluster_is_ours_and_can_be_removed(home: Path) -> None:
    root = create_cluster_dir(home, "prod")
    assert (root / MARKER).read_text() == "pgha cluster prod\n"
    (root / "data").mkdir()
    (root / "data" / "link").symlink_to(home.parent / "outside")  # planted by a service user
    assert is_ours(home, "prod")
    remove_cluster_dir(home, "prod")
    assert not root.exists()
    assert (home.parent / "outside" / "keep.txt").read_text() == "keep\n"


@pytest.mark.parametrize("name", ["", ".", "..", "../outside", "/", "/etc", "a/b", "Prod", "prod\n"])
def test_a_bad_name_never_becomes_a_path(home: Path, name: str) -> None:
    with pytest.raises(NotOursError, match="name: must be lowercase"):
        remove_cluster_dir(home, name)
    with pytest.raises(NotOursError, match="name: must be lowercase"):
        create_cluster_dir(home, name)


def test_no_marker_no_removal(home: Path) -> None:
    (home / "plain").mkdir()
    (home / "plain" / "spec.json").write_text("{}")
    with pytest.raises(NotOursError, match="holds no pgha marker"):
        remove_cluster_dir(home, "plain")
    assert (home / "plain" / "spec.json").exists()
    # up refuses to adopt it too
    with pytest.raises(NotOursError, match="holds no pgha marker"):
        create_cluster_dir(home, "plain")


def test_a_marker_for_another_cluster_is_not_ours(home: Path) -> None:
    create_cluster_dir(home, "one")
    (home / "one").rename(home / "two")
    with pytest.raises(NotOursError, match="no pgha marker for cluster 'two'"):
        remove_cluster_dir(home, "two")
    assert (home / "two").exists()


def test_a_symbolic_link_is_never_followed(home: Path) -> None:
    outside = home.parent / "outside"
    (outside / MARKER).write_text("pgha cluster evil\n")
    (home / "evil").symlink_to(outside)
    with pytest.raises(NotOursError, match="symbolic link"):
        remove_cluster_dir(home, "evil")
    assert (outside / "keep.txt").exists()


def test_a_marker_that_is_a_link_is_not_a_marker(home: Path) -> None:
    (home.parent / "outside" / "m").write_text("pgha cluster sneaky\n")
    (home / "sneaky").mkdir()
    (home / "sneaky" / MARKER).symlink_to(home.parent / "outside" / "m")
    with pytest.raises(NotOursError):
        remove_cluster_dir(home, "sneaky")
    assert (home / "sneaky").exists()


def test_a_clusters_directory_behind_a_link_still_works(home: Path, tmp_path: Path) -> None:
    # PGHA_HOME may itself be a link; its clusters are still its direct children.
    alias = tmp_path / "alias"
    alias.symlink_to(home)
    create_cluster_dir(alias, "viaalias")
    remove_cluster_dir(alias, "viaalias")
    assert not (home / "viaalias").exists()


def test_a_scratch_instance_is_removed_only_inside_a_cluster_pgha_created(home: Path, tmp_path: Path) -> None:
    root = create_cluster_dir(home, "prod")
    scratch = scratch_dir(home, "prod", "verify-20261207-174151f")
    assert scratch == root / "scratch" / "verify-20261207-174151f"
    (scratch / "data").mkdir(parents=True)
    remove_scratch_dir(home, "prod", "verify-20261207-174151f")
    assert not scratch.exists() and root.is_dir()
    for bad in ("", "..", "../../outside", "a/b", "Verify", ".hidden"):
        with pytest.raises(NotOursError):
            remove_scratch_dir(home, "prod", bad)
    # The scratch directory planted as a link to elsewhere: refused, the target kept.
    (root / "scratch").rmdir()
    (root / "scratch").symlink_to(tmp_path / "outside")
    (tmp_path / "outside" / "verify-x").mkdir()
    with pytest.raises(NotOursError):
        remove_scratch_dir(home, "prod", "verify-x")
    assert (tmp_path / "outside" / "verify-x").is_dir() and (tmp_path / "outside" / "keep.txt").exists()
    # A directory pgha did not create has no scratch instances to remove.
    (home / "notours" / "scratch" / "verify-x").mkdir(parents=True)
    with pytest.raises(NotOursError):
        remove_scratch_dir(home, "notours", "verify-x")
