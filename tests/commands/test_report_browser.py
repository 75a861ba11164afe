"""`iteratr report`'s page in a real headless Chromium: it loads with no console message at all (a scriptless
page has nothing to log; a blocked load or an error would show here), the rendered DOM holds the charts with
the known session's counts, and a screenshot is saved as the test's artifact (its path is printed).

Chromium comes from the system package manager (``.ci/run`` installs it when ``/usr/bin/chromium`` is
missing). Outside CI a machine without it skips these tests, saying why; under CI (``CI`` set) they fail.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from iteratr.commands import report
from iteratr.output import Printer
from tests.commands.report_session import EXPECTED_COUNTS, Page, commit_known_session, expected_counts

CHROMIUM = Path("/usr/bin/chromium")
# Headless, as root in a container, and quiet on the network: nothing but the file is loaded.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture
def chromium(capsys: pytest.CaptureFixture[str]) -> Path:
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (CI does, in .ci/run)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; under CI the browser test never skips", pytrace=False)
    with capsys.disabled():
        print(f"\nskipping the browser test: {reason}")
    pytest.skip(reason)


def browse(chromium: Path, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(chromium), *FLAGS, f"--user-data-dir={profile}", *args, url],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def console_lines(stderr: str) -> list[str]:
    """What the page logged: Chromium writes console messages (any level) as ``...:CONSOLE:<line>] "..."``."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the pixel data): enough to tell a page from a blank image."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    data, pos = b"", 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(data)))


@pytest.fixture
def page_file(repo: Path) -> Path:
    """The known session's report, made by the command itself from the main checkout (branch-only session)."""
    commit_known_session(repo)
    out = io.StringIO()
    assert report.run(name="SPEC", output=None, data_dir=None, cwd=repo, out=Printer(stream=out)) == 0
    return repo / out.getvalue().strip()


def test_chromium_renders_the_report_with_its_charts_and_no_console_message(
    chromium: Path, page_file: Path, tmp_path: Path
) -> None:
    result = browse(chromium, tmp_path / "profile", page_file.as_uri(), "--dump-dom")

    assert result.returncode == 0, result.stderr[-3000:]
    assert console_lines(result.stderr) == []
    dom = Page(result.stdout)
    assert expected_counts(dom) == EXPECTED_COUNTS
    assert [t for t, _ in dom.tags if t == "script"] == []  # the hostile task stayed text in the real parser too
    assert "<script>alert(1)</script>" in "".join(dom.text)


def test_chromium_screenshot_is_saved_as_the_artifact(
    chromium: Path, page_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shot = tmp_path / "report.png"

    result = browse(
        chromium, tmp_path / "profile", page_file.as_uri(), f"--screenshot={shot}", "--window-size=1200,1600"
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert console_lines(result.stderr) == []
    width, height, colours = png_size_and_colours(shot.read_bytes())
    assert (width, height) == (1200, 1600)
    assert colours > 50  # text, charts and badges, not a blank page
    with capsys.disabled():
        print(f"\nreport screenshot: {shot}")


def test_the_console_check_sees_what_a_bad_page_logs(chromium: Path, tmp_path: Path) -> None:
    """The check above is only worth something if it catches errors: a page with a blocked load and a
    script error must show both."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="default-src \'none\';'
        ' script-src \'unsafe-inline\'"></head><body><img src="x.png"><script>missingFunction()</script></body></html>'
    )

    result = browse(chromium, tmp_path / "profile", bad.as_uri(), "--dump-dom")

    found = console_lines(result.stderr)
    assert any("Uncaught ReferenceError" in line for line in found), result.stderr[-3000:]
    assert any("Content Security Policy" in line for line in found), result.stderr[-3000:]
