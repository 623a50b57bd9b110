"""Atomic writes: the file or folder appears whole under its name, or not at all."""

from __future__ import annotations

import os

import pytest

from bratslib.files import atomic_path, write_bytes_atomic


def test_a_file_replaces_the_old_one_and_leaves_no_temporary_name(tmp_path):
    path = tmp_path / "sub" / "a.json"
    write_bytes_atomic(path, b"old")
    assert write_bytes_atomic(path, b"new") == path and path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]


def test_a_failed_writer_leaves_the_old_file_and_no_temporary_name(tmp_path):
    path = write_bytes_atomic(tmp_path / "a.txt", b"old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_failed_rename_leaves_the_old_file(tmp_path, monkeypatch):
    path = write_bytes_atomic(tmp_path / "a.txt", b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_folder_appears_whole_and_a_failed_one_not_at_all(tmp_path):
    with atomic_path(tmp_path / "run") as tmp:
        tmp.mkdir()
        (tmp / "config.json").write_text("{}")
        assert not (tmp_path / "run").exists()  # nothing under the real name while it is written
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["config.json"]
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "other") as tmp:
            tmp.mkdir()
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_the_suffix_ends_the_temporary_name(tmp_path):
    seen = []
    with atomic_path(tmp_path / "model.keras", suffix=".keras") as tmp:
        seen.append(tmp)
        tmp.write_bytes(b"x")
    assert seen[0].name.endswith(".tmp.keras") and seen[0].name.startswith(".model.keras.")
    assert seen[0].parent == tmp_path and (tmp_path / "model.keras").read_bytes() == b"x"


@pytest.mark.parametrize("links", [True, False])
def test_copy_atomic_links_or_copies_and_the_names_stay_independent(tmp_path, monkeypatch, links):
    import os

    from bratslib.files import copy_atomic

    source = tmp_path / "epoch-0001.keras"
    source.write_bytes(b"weights" * 1000)
    if not links:
        def no_links(*args, **kwargs):
            raise OSError("hard links not supported")
        monkeypatch.setattr(os, "link", no_links)
    copy = copy_atomic(source, tmp_path / "best" / "best-epoch-0001.keras")
    assert copy.read_bytes() == source.read_bytes()
    assert (copy.stat().st_ino == source.stat().st_ino) == links
    source.unlink()  # the checkpoint it came from is removed: the copy stays whole
    assert copy.read_bytes() == b"weights" * 1000
    assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # no temporary file left
