"""Exclusions: untracked-at-start files stay out unless changed; files over the size limit stay out."""

from __future__ import annotations

from pathlib import Path

from iteratr.run.untracked import exclusions, size_words, snapshot


def test_user_files_untouched_stay_out_changed_ones_go_in(tmp_path: Path) -> None:
    (tmp_path / "iteratr.yml").write_text("model: x\n")
    (tmp_path / "notes.md").write_text("mine\n")
    base = snapshot(tmp_path, ["iteratr.yml", "notes.md", "gone.txt"])
    assert set(base) == {"iteratr.yml", "notes.md"}
    (tmp_path / "notes.md").write_text("changed by the agent\n")
    (tmp_path / "new.py").write_text("print()\n")
    result = exclusions(tmp_path, ["iteratr.yml", "notes.md", "new.py"], base, 0)
    assert result.user_files == ["iteratr.yml"]
    assert result.too_big == []


def test_files_over_the_limit_are_left_out_and_named(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(b"x" * 2048)
    (tmp_path / "small.txt").write_text("ok")
    result = exclusions(tmp_path, ["big.bin", "small.txt"], {}, 1024)
    assert result.too_big == [("big.bin", 2048)]
    assert result.paths == ["big.bin"]
    assert exclusions(tmp_path, ["big.bin"], {}, 0).too_big == []  # 0 = no limit
    assert size_words(2048) == "2.0 KB" and size_words(100 * 1024 * 1024) == "100.0 MB"
