"""The results table: complete rows, safe under parallel writers and under a crash mid-write."""

from __future__ import annotations

import csv
import multiprocessing as mp

import pytest

from src.reporting.rows import COLUMNS, append_rows, read_rows


def row(i: int, **extra) -> dict:
    base = dict.fromkeys(COLUMNS, 0)
    return {**base, "data": "fmnist", "attack": f"a{i}", "eps": 0.1 * i, "commit": "abc", **extra}


def test_append_creates_header_and_keeps_order(tmp_path):
    path = tmp_path / "results" / "results.csv"
    append_rows(path, [row(0)])
    append_rows(path, [row(1), row(2)])
    table = read_rows(path)
    assert [r["attack"] for r in table] == ["a0", "a1", "a2"]
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)


def test_extra_columns_are_kept(tmp_path):
    path = tmp_path / "r.csv"
    append_rows(path, [row(0)])
    append_rows(path, [row(1, note="x")])
    table = read_rows(path)
    assert table[0]["note"] == "" and table[1]["note"] == "x"


def test_row_missing_a_column_is_refused(tmp_path):
    bad = row(0)
    del bad["adv_acc"]
    with pytest.raises(ValueError, match="adv_acc"):
        append_rows(tmp_path / "r.csv", [bad])


def test_crash_mid_write_leaves_the_old_table_whole(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    append_rows(path, [row(0), row(1)])
    before = path.read_bytes()

    def crash_halfway(self, rows):
        rows = list(rows)
        for r in rows[: len(rows) // 2]:
            self.writerow(r)
        self.writer.writerow(["fmnist", "none", "torn"])  # a partial row, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(csv.DictWriter, "writerows", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        append_rows(path, [row(2), row(3)])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _append_many(path, worker):
    for i in range(10):
        append_rows(path, [row(i, classifier=f"w{worker}")])


def test_parallel_writers_lose_nothing(tmp_path):
    path = tmp_path / "r.csv"
    procs = [mp.get_context("fork").Process(target=_append_many, args=(path, w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    table = read_rows(path)
    assert len(table) == 40
    assert {(r["classifier"], r["attack"]) for r in table} == {
        (f"w{w}", f"a{i}") for w in range(4) for i in range(10)
    }


def test_the_commit_named_is_the_code_the_process_loaded_not_a_later_head(tmp_path, monkeypatch):
    """Rows of a run that lasts hours name the code it runs, even when commits land meanwhile."""
    import subprocess

    from src.runtime.provenance import git_commit

    def git(*args: str) -> None:
        who = ["-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run(["git", *who, *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "the code the run loaded")
    monkeypatch.chdir(tmp_path)
    git_commit.cache_clear()
    try:
        loaded = git_commit()
        git("commit", "-q", "--allow-empty", "-m", "landed during the run")
        assert git_commit() == loaded
        git_commit.cache_clear()
        assert git_commit() != loaded  # a new process names the new commit
    finally:
        monkeypatch.undo()
        git_commit.cache_clear()
