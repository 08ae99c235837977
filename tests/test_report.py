"""`footprint report`: a self-contained HTML page with its charts, rendered by headless
Chromium to a PNG that is checked not to be blank; and the Markdown version."""

from __future__ import annotations

import json
import subprocess

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, need_tool

from footprint.cli import cli

IMAGES = [SAMPLES / n for n in ("small-none.img", "busybox-gzip.img", "busybox-early-zstd.img")]


@pytest.fixture
def profiles(tmp_path) -> list[str]:
    out = []
    for i, image in enumerate(IMAGES):
        p = tmp_path / f"p{i}.json"
        assert CliRunner().invoke(cli, ["profile", str(image), "-o", str(p)]).exit_code == 0
        out.append(str(p))
    return out


def test_markdown_report(profiles: list[str]) -> None:
    r = CliRunner().invoke(cli, ["report", "--markdown", *profiles])
    assert r.exit_code == 0, r.output
    md = r.stdout
    assert md.startswith("# footprint report")
    assert md.count("\n| ") >= 6 and "Top growers since" in md
    assert "busybox" in md


def test_html_report_renders_with_charts(profiles: list[str], tmp_path) -> None:
    html = tmp_path / "report.html"
    r = CliRunner().invoke(
        cli,
        ["report", *profiles, "--label", "r1", "--label", "r2", "--label", "r3", "-o", str(html)],
    )
    assert r.exit_code == 0, r.output
    text = html.read_text()
    assert text.count("<svg") >= 3, "trend, components and breakdown charts are inline"
    import re

    fetches = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?https?:""", text)
    assert not fetches and "<script" not in text and "<link" not in text
    chromium = need_tool("chromium", "chromium")
    png = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1000,1600",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    import matplotlib.image

    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 900
    assert pixels.std() > 0.05, "the page is not blank"
    # Chart colours (matplotlib's default blue) are present, not only text.
    blue = (
        (abs(pixels[..., 0] - 0.12) < 0.05)
        & (abs(pixels[..., 1] - 0.47) < 0.05)
        & (abs(pixels[..., 2] - 0.71) < 0.05)
    )
    assert blue.sum() > 2000


def test_report_plots_a_measured_timeline(profiles: list[str], tmp_path) -> None:
    timeline = tmp_path / "m.json"
    timeline.write_text(
        json.dumps(
            {
                "image": "x",
                "timeline": [
                    {"t": 0.0, "bytes": 1 << 20, "anon": 0, "shmem": 1 << 20},
                    {"t": 0.5, "bytes": 3 << 20, "anon": 2 << 20, "shmem": 1 << 20},
                ],
            }
        )
    )
    html = tmp_path / "r.html"
    r = CliRunner().invoke(cli, ["report", *profiles, "--timeline", str(timeline), "-o", str(html)])
    assert r.exit_code == 0, r.output
    assert html.read_text().count("<svg") >= 4


def test_a_bisection_that_found_no_limit_reads_as_text() -> None:
    from footprint.measure.bisect import Bisection, Trial
    from footprint.report.measure import bisection_dict, measurement_text

    b = Bisection(None, 4 << 20, 64 << 20, 128 << 20)
    b.trials.append(Trial(128 << 20, "timeout", False, 100 << 20, 30.0))
    doc = {"schema_version": 1, "bisect": bisection_dict(b)}
    text = measurement_text(doc)
    assert "128 MiB → timeout" in text
    assert "minimum: none found" in text
