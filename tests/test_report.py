"""`footprint report`: the page's numbers against the profiles and `footprint diff --json`,
its options and their errors, the Markdown version; then the page in a real browser
(Debian's chromium driven by Playwright): no console error, no request leaving the file, the
map drawn, a hover, a zoom, the search and a screenshot that is not blank."""

from __future__ import annotations

import io
import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, assert_schema, need, real_image

from footprint.cli import cli
from footprint.model.crashkernel import parse_crashkernel
from footprint.profile import load
from footprint.report.diff import summary_line
from footprint.units import MIB, human, page_round

IMAGES = [SAMPLES / n for n in ("small-none.img", "busybox-gzip.img", "busybox-early-zstd.img")]
LABELS = ["r1", "r2", "r3"]


def _profile(image: Path, out: Path, *args: str) -> str:
    r = CliRunner().invoke(cli, ["profile", str(image), "-o", str(out), *args])
    assert r.exit_code == 0, r.output
    return str(out)


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The samples' profiles, made once: the tests only read them."""
    where = tmp_path_factory.mktemp("profiles")
    return [_profile(image, where / f"p{i}.json") for i, image in enumerate(IMAGES)]


def _report(*args: str) -> str:
    r = CliRunner().invoke(cli, ["report", *args])
    assert r.exit_code == 0, r.output
    return r.stdout


def _labelled(profiles: list[str]) -> list[str]:
    return [*profiles, *(a for label in LABELS for a in ("--label", label))]


def _diff_json(old: str, new: str) -> dict:
    r = CliRunner().invoke(cli, ["diff", old, new, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


class Tables(HTMLParser):
    """Every <table> of a page as rows of (text, attributes) cells, by its id or class; and
    the page's figures (the JSON the charts are drawn from)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, dict]]]] = {}
        self._table: list | None = None
        self._cell: list | None = None
        self._figures = False
        self.figures: dict = {}
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or a.get("class") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = ["", a]
        elif tag == "script" and a.get("id") == "figures":
            self._figures = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self._table[-1].append((self._cell[0].strip(), self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "script":
            self._figures = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[0] += data
        if self._figures:
            self.figures = json.loads(data)


def test_html_page_is_self_contained(profiles: list[str]) -> None:
    from plotly.offline import get_plotlyjs

    page = _report(*_labelled(profiles))
    assert page.startswith("<!doctype html>")
    assert get_plotlyjs() in page, "plotly.js is inline, whole"
    # Outside plotly.js (whose requests the browser test watches), nothing names a resource.
    ours = page.replace(get_plotlyjs(), "")
    fetches = re.findall(r"""(?:src|href)\s*=|url\(|@import|<link|<iframe|https?:""", ours)
    assert not fetches, fetches
    scripts = re.findall(r"<script[^>]*>", page)
    assert scripts == ["<script>", '<script type="application/json" id="figures">', "<script>"]
    # plotly.js is most of it; the data of three tiny images adds little.
    assert len(get_plotlyjs()) < len(page.encode()) < len(get_plotlyjs()) + 120_000


def test_html_numbers_are_the_profiles_and_diffs(profiles: list[str]) -> None:
    page = _report(*_labelled(profiles))
    t = Tables(page)
    latest, previous = load(profiles[-1]), load(profiles[-2])
    assert "3 releases: r1 → r2 → r3" in page
    # The file table: every file of the latest release, once, largest first, with its growth.
    rows = t.tables["file-table"][1:]
    assert len(rows) == len(latest.files) == 4
    assert sorted(r[0][0] for r in rows) == sorted(f.path for f in latest.files)
    assert [int(r[2][1]["data-v"]) for r in rows] == sorted(
        (f.bytes for f in latest.files), reverse=True
    )
    by_path = {r[0][0]: r for r in rows}
    old = {f.path: f.bytes for f in previous.files}
    for f in latest.files:
        growth = by_path[f.path][4]
        assert int(growth[1]["data-v"]) == f.bytes - old.get(f.path, 0)
        assert growth[0] == ("new" if f.path not in old else "0 B"), f.path
    assert by_path["/kernel/x86/microcode/GenuineIntel.bin"][4][1]["class"] == "n up"
    # The map: one tile per file, its area the page-rounded bytes, under its component.
    (tree,) = t.figures["size-map"]["data"]
    leaves = [i for i, id in enumerate(tree["ids"]) if "f" in id]
    assert len(leaves) == len(latest.files)
    assert sum(tree["values"][i] for i in leaves) == tree["values"][0]
    assert tree["values"][0] == sum(page_round(f.bytes, 4096) for f in latest.files)
    busybox = [d[4] for d in tree["customdata"]].index("/bin/busybox")
    assert tree["customdata"][busybox][:3] == [human(1982464), "99.4%", "busybox"]
    # Each diff: headed by the labels, with `footprint diff --json`'s numbers.
    for i, (a, b) in enumerate(zip(profiles, profiles[1:], strict=False)):
        doc = _diff_json(a, b)
        assert f"<h2>{LABELS[i]} → {LABELS[i + 1]}</h2>" in page
        assert f'<code class="summary">{summary_line(doc)}</code>' in page
    totals = [t for name, t in t.tables.items() if name == "diff-totals"]
    assert len(totals) == 1  # both diffs' totals tables: one key, rows of both
    page_deltas = [int(r[3][1]["data-v"]) for r in totals[0] if "data-v" in r[3][1]]
    json_deltas = [
        r["delta"]
        for a, b in zip(profiles, profiles[1:], strict=False)
        for r in _diff_json(a, b)["totals"]
    ]
    assert page_deltas == json_deltas


def test_html_reservation_and_the_default_line(profiles: list[str], tmp_path: Path) -> None:
    latest = load(profiles[-1])
    page = _report(*_labelled(profiles))
    t = Tables(page)
    reservation = {r[0][0]: [c[0] for c in r[1:]] for r in t.tables["reservation-table"]}
    res = latest.reservation
    assert reservation["rootfs"][-1] == human(res.rootfs_bytes)
    assert reservation["compressed initrd"][-1] == human(res.initrd_compressed_bytes)
    assert reservation["static estimate"][-1] == human(res.static_estimate_bytes)
    assert reservation["kernel"] == ["none (no --kernel)"] * 3
    assert reservation["crashkernel=512M-:192M"] == ["192 MiB with 4 GiB RAM"]
    shape = t.figures["reservation-chart"]["layout"]["shapes"][0]
    assert shape["y0"] == 192 and shape["name"] == "crashkernel=512M-:192M (192 MiB with 4 GiB)"
    stacked = t.figures["reservation-chart"]["data"]
    assert [d["name"] for d in stacked] == ["kernel", "compressed initrd", "rootfs", "struct page"]
    assert sum(d["y"][-1] for d in stacked) == pytest.approx(
        res.static_estimate_bytes / MIB, abs=0.01
    )
    # arm64's line on a 1 GiB machine reserves nothing: said, and no line drawn.
    arm64 = "2G-4G:320M,4G-32G:512M,32G-64G:1024M,64G-128G:2048M,128G-:4096M"
    page = _report(profiles[-1], "--crashkernel", arm64, "--machine-ram", "1G")
    assert "which reserves nothing there" in page
    assert not Tables(page).figures["reservation-chart"]["layout"]["shapes"]
    page = _report(profiles[-1], "--crashkernel", arm64, "--machine-ram", "8G")
    assert Tables(page).figures["reservation-chart"]["layout"]["shapes"][0]["y0"] == 512


CALIBRATION = {
    "schema_version": 1,
    "kind": "calibration",
    "tool": "footprint 0.1.0",
    "backend": "qemu",
    "minimum_mib": 236,
    "resolution_mib": 4,
    "trials": [
        {
            "memory_bytes": 236 * MIB,
            "memory_mib": 236,
            "outcome": "success",
            "success": True,
            "peak_bytes": 200 * MIB,
            "duration_s": 9.5,
        }
    ],
    "repeats": [],
    "model_mib": 229.0,
    "kdumpctl_formula_mib": 300.0,
    "model_gap_mib": -7.0,
    "recommended_mib": 272,
    "recommended_crashkernel": "crashkernel=272M",
    "terms": {
        "kernel": 56.9,
        "compressed_initrd": 37.6,
        "rootfs": 131.0,
        "userspace_peak": 12.5,
        "kernel_runtime": 20.0,
        "makedumpfile": 5.0,
        "margin": 24.0,
        "why_margin": "10 %",
    },
    "at_minimum": None,
}


def test_a_calibration_joins_the_release_it_names(profiles: list[str], tmp_path: Path) -> None:
    assert_schema(CALIBRATION)  # what `calibrate --json` writes
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(CALIBRATION))
    for how, column in ((str(cal), 2), (f"r2={cal}", 1)):
        t = Tables(_report(*_labelled(profiles), "--calibration", how))
        reservation = {r[0][0]: [c[0] for c in r[1:]] for r in t.tables["reservation-table"]}
        expected = ["", "", ""]
        expected[column] = "236 MiB"
        assert reservation["measured minimum (qemu -m)"] == expected
        expected[column] = "272 MiB"
        assert reservation["recommended"] == expected
        expected[column] = "12.5 MiB"
        assert reservation["userspace peak"] == expected
        stacked = {d["name"]: d for d in t.figures["reservation-chart"]["data"]}
        assert stacked["kernel runtime"]["y"][column] == 20.0
        assert stacked["kernel runtime"]["marker"]["pattern"]["shape"] == "/"
        assert stacked["measured minimum (qemu -m)"]["y"][column] == 236
    md = _report("--markdown", *_labelled(profiles), "--calibration", f"r3={cal}")
    assert "| measured minimum (qemu -m) |  |  | 236 MiB |" in md


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 2, "cannot read calibration"),
        ("{not json", 3, "is not valid JSON"),
        (json.dumps({"kind": "boot"}), 3, "is not a calibration"),
        (json.dumps({**CALIBRATION, "minimum_mib": "236"}), 3, "`$.minimum_mib`"),
        (json.dumps({**CALIBRATION, "terms": {"margin": 1}}), 3, "`$.terms`"),
    ],
)
def test_a_bad_calibration_is_one_line(
    profiles: list[str], tmp_path: Path, content: str | None, code: int, message: str
) -> None:
    cal = tmp_path / "cal.json"
    if content is not None:
        cal.write_text(content)
    r = CliRunner().invoke(cli, ["report", profiles[-1], "--calibration", str(cal)])
    assert r.exit_code == code, r.output
    assert r.output.count("\n") == 1 and message in r.output, r.output


def test_two_calibrations_for_one_release_are_refused(profiles: list[str], tmp_path: Path) -> None:
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps(CALIBRATION))
    r = CliRunner().invoke(
        cli,
        ["report", *_labelled(profiles), "--calibration", str(cal), "--calibration", f"r3={cal}"],
    )
    assert r.exit_code == 2 and "two --calibration for the release 'r3'" in r.output, r.output


def test_report_plots_a_measured_timeline(profiles: list[str], tmp_path: Path) -> None:
    timeline = tmp_path / "m.json"
    timeline.write_text(
        json.dumps(
            {
                "kind": "measurement",
                "image": "x.img",
                "outcome": "success",
                "timeline": [
                    {"t": 0.0, "bytes": 1 << 20, "anon": 0, "shmem": 1 << 20},
                    {"t": 0.5, "bytes": 3 << 20, "anon": 2 << 20, "shmem": 1 << 20},
                ],
            }
        )
    )
    page = _report(*profiles, "--timeline", str(timeline))
    lines = Tables(page).figures["timeline-0"]["data"]
    assert [(d["name"], d["x"], d["y"]) for d in lines] == [
        ("cgroup charge", [0.0, 0.5], [1.0, 3.0]),
        ("anon", [0.0, 0.5], [0.0, 2.0]),
        ("shmem (tmpfs)", [0.0, 0.5], [1.0, 1.0]),
    ]
    assert "<h3>x.img: success</h3>" in page


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 2, "cannot read timeline"),
        ("[1, 2", 3, "is not valid JSON"),
        (json.dumps({"image": "x"}), 3, "has no timeline"),
        (json.dumps({"timeline": [{"t": 0, "bytes": "many"}]}), 3, "`$[0].bytes`"),
        (json.dumps({"kind": "boot", "timeline": [{"t": 0, "MemTotal": 1}]}), 3, "MemFree"),
    ],
)
def test_a_bad_timeline_is_one_line(
    profiles: list[str], tmp_path: Path, content: str | None, code: int, message: str
) -> None:
    path = tmp_path / "t.json"
    if content is not None:
        path.write_text(content)
    r = CliRunner().invoke(cli, ["report", profiles[-1], "--timeline", str(path)])
    assert r.exit_code == code, r.output
    assert r.output.count("\n") == 1 and message in r.output, r.output


@pytest.mark.parametrize(
    ("line", "ram", "reserved"),
    [
        ("512M-:192M", 4 << 30, 192 * MIB),
        ("512M-:192M", 256 * MIB, 0),
        ("crashkernel=384M-:128M", 512 * MIB, 128 * MIB),
        ("2G-64G:256M,64G-:512M", 64 << 30, 512 * MIB),  # END excluded, START included
        ("2G-64G:256M,64G-:512M", (64 << 30) - 1, 256 * MIB),
        ("2G-4G:320M,4G-32G:512M", 1 << 30, 0),
        ("256M", 1 << 30, 256 * MIB),
        ("crashkernel=256M,high", 1 << 30, 256 * MIB),
        ("512M-:192M@16M", 1 << 30, 192 * MIB),
    ],
)
def test_crashkernel_lines(line: str, ram: int, reserved: int) -> None:
    assert parse_crashkernel(line).reservation_for(ram) == reserved


@pytest.mark.parametrize("line", ["", "big", "512M:192M", "1G-512M:64M", "512M-:lots", "1G,cma"])
def test_a_bad_crashkernel_line(profiles: list[str], line: str) -> None:
    with pytest.raises(ValueError):
        parse_crashkernel(line)
    r = CliRunner().invoke(cli, ["report", profiles[-1], "--crashkernel", line])
    assert r.exit_code == 2 and r.output.startswith("footprint: error: --crashkernel"), r.output
    assert r.output.count("\n") == 1


def test_markdown_report(profiles: list[str]) -> None:
    md = _report("--markdown", *_labelled(profiles))
    assert md.startswith("# footprint report\n\n3 releases: r1 → r2 → r3\n")
    assert "| r3 | 908 KiB | -96.4 KiB | 1.9 MiB | +4 KiB |" in md
    assert "## Top growers since r1" in md and "| busybox | new | 1.89 MiB | +1.89 MiB |" in md
    assert "| **static estimate** |" in md
    assert "crashkernel=512M-:192M reserves 192 MiB for a first kernel with 4 GiB of RAM." in md
    for i, (a, b) in enumerate(zip(profiles, profiles[1:], strict=False)):
        assert f"### footprint diff: `{LABELS[i]}` → `{LABELS[i + 1]}`" in md
        assert f"`{summary_line(_diff_json(a, b))}`" in md


def test_releases_are_told_apart(profiles: list[str], tmp_path: Path) -> None:
    """Images of the same name in two folders are labelled by their paths; two equal
    --label are refused."""
    for d in ("1.0", "1.1"):
        (tmp_path / d).mkdir()
    a, b = tmp_path / "1.0" / "initrd.img", tmp_path / "1.1" / "initrd.img"
    a.write_bytes(IMAGES[1].read_bytes())
    b.write_bytes(IMAGES[2].read_bytes())
    md = _report("--markdown", str(a), str(b))
    assert f"2 releases: {a} → {b}" in md
    r = CliRunner().invoke(cli, ["report", *profiles[:2], "--label", "x", "--label", "x"])
    assert r.exit_code == 2 and "two releases have the same label" in r.output, r.output


def test_one_release_is_one_release(profiles: list[str]) -> None:
    md = _report("--markdown", profiles[-1], "--label", "only")
    assert "\n1 release: only\n" in md and "footprint diff" not in md
    page = _report(profiles[-1], "--label", "only")
    assert "1 release: only" in page and "growth since" not in page
    assert "components-chart" not in Tables(page).figures


def test_a_bisection_that_found_no_limit_reads_as_text() -> None:
    from footprint.measure.bisect import Bisection, Trial
    from footprint.report.measure import bisection_dict, measurement_text

    b = Bisection(None, 4 << 20, 64 << 20, 128 << 20)
    b.trials.append(Trial(128 << 20, "timeout", False, 100 << 20, 30.0))
    doc = {"schema_version": 1, "bisect": bisection_dict(b)}
    text = measurement_text(doc)
    assert "128 MiB → timeout" in text
    assert "minimum: none found" in text


# -- in a real browser ---------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright cannot download its own here


class Page:
    """A report opened in headless chromium, with what it logged and asked for."""

    def __init__(self, browser, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.route(  # nothing leaves the file: a request elsewhere fails, and is seen
            re.compile(r"^(?!file:|data:|blob:)"), lambda route: route.abort()
        )
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("#size-map g.slice")

    def tile(self, name: str):
        """The size map's tile of `name` (the innermost one whose label starts with it)."""
        slices = self.page.locator("#size-map g.slice")
        found = [
            (box["width"] * box["height"], s)
            for s in slices.all()
            if (s.text_content() or "").startswith(name) and (box := s.bounding_box())
        ]
        assert found, f"no tile {name!r}"
        return min(found, key=lambda f: f[0])[1]


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        need(False, "playwright is not installed: pip install 'footprint[test]'")
    need(os.path.exists(CHROMIUM), f"{CHROMIUM} is missing (Debian package chromium)")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox"] if os.geteuid() == 0 else [],  # root has no sandbox
            )
        except Error as e:
            need(False, f"chromium does not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


def _distinct_colours(png: bytes) -> tuple[int, float]:
    """How many colours a screenshot has, and the share of its commonest one."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24)
    assert colours is not None
    pixels = image.width * image.height
    return len(colours), max(c for c, _ in colours) / pixels


@pytest.mark.integration
@pytest.mark.slow
def test_the_page_in_a_browser(profiles: list[str], tmp_path: Path, browser) -> None:
    path = tmp_path / "report.html"
    _report(*_labelled(profiles), "-o", str(path))
    latest = load(profiles[-1])
    p = Page(browser, path)
    page = p.page
    assert not p.errors
    assert p.requests == [path.as_uri()], "the page asks for nothing but itself"
    # The map: a tile per node (image, components, directories, files).
    (tree,) = Tables(path.read_text()).figures["size-map"]["data"]
    assert page.locator("#size-map g.slice").count() == len(tree["ids"])
    # Hovering busybox's tile shows its path, size, share and component.
    p.tile("busybox").hover()
    page.wait_for_selector("#size-map .hoverlayer .hovertext")
    hover = page.locator("#size-map .hoverlayer").text_content()
    assert "/bin/busybox" in hover and f"{human(page_round(1982256, 4096))} in pages" in hover
    assert "99.4% of the image" in hover and "component: busybox" in hover
    assert "growth since r2: 0 B" in hover
    # Clicking the /bin directory zooms to it: it becomes the map's root and fills it.
    before = p.tile("/bin").bounding_box()
    whole = page.locator("#size-map g.slice").first.bounding_box()
    page.mouse.click(before["x"] + 20, before["y"] + 8)
    bin_id = tree["ids"][[d[4] for d in tree["customdata"]].index("/bin")]
    page.wait_for_function(
        f"document.getElementById('size-map')._fullData[0].level === {json.dumps(bin_id)}"
    )
    page.wait_for_timeout(1000)  # the zoom's transition
    after = p.tile("/bin").bounding_box()
    assert after["width"] > 0.95 * whole["width"] > before["width"] * 0.95
    # The search filters the table to exactly the rows that match path or component.
    page.fill("#search", "busybox")
    visible = page.locator("#file-table tbody tr:not([hidden])")
    matching = [f for f in latest.files if "busybox" in f.path or "busybox" in f.component]
    assert visible.count() == len(matching) == 1
    assert page.text_content("#file-count") == f"1 of {len(latest.files)} files"
    page.fill("#search", "")
    assert visible.count() == len(latest.files)
    # A click on "bytes" sorts by it: the smallest first, then the largest.
    page.click("#file-table th:nth-child(3)")
    first = page.locator("#file-table tbody tr").first.locator("td").first.text_content()
    assert first == min(latest.files, key=lambda f: f.bytes).path
    page.click("#file-table th:nth-child(3)")
    first = page.locator("#file-table tbody tr").first.locator("td").first.text_content()
    assert first == "/bin/busybox"
    # What a person sees is not blank: the charts' colours, not only text on white.
    colours, commonest = _distinct_colours(page.screenshot(full_page=True))
    assert colours > 500 and commonest < 0.9, (colours, commonest)
    assert not p.errors and p.requests == [path.as_uri()]
    page.close()


@pytest.mark.integration
@pytest.mark.slow
def test_the_page_of_real_images(tmp_path: Path, browser) -> None:
    """Two of Debian's images as two releases: the page's size, its numbers, its map."""
    old = _profile(real_image("dracut-nosystemd.img"), tmp_path / "old.json")
    new = _profile(real_image("dracut-systemd.img"), tmp_path / "new.json")
    path = tmp_path / "report.html"
    _report(old, new, "--label", "nosystemd", "--label", "systemd", "-o", str(path))
    text = path.read_text()
    from plotly.offline import get_plotlyjs

    # plotly.js plus ~1000 files' rows in the table, the map and the diff: under 1.5 MB more.
    assert len(text.encode()) < len(get_plotlyjs()) + 1_500_000
    t = Tables(text)
    latest = load(new)
    assert len(t.tables["file-table"]) - 1 == len(latest.files) > 900
    doc = _diff_json(old, new)
    assert f'<code class="summary">{summary_line(doc)}</code>' in text
    deltas = [int(r[3][1]["data-v"]) for r in t.tables["diff-totals"] if "data-v" in r[3][1]]
    assert deltas == [r["delta"] for r in doc["totals"]]
    components = [r for r in t.tables["diff-components"] if "data-v" in r[3][1]]
    assert [[int(c[1]["data-v"]) for c in r[3:]] for r in components] == [
        [r["delta"], *(r["parts"][part]["delta"] for part in ("own", "exclusive", "shared"))]
        for r in doc["components"]
    ]
    changed = t.tables["diff-files"]
    assert sum(1 for r in changed if "data-v" in r[3][1]) == len(doc["files"])
    p = Page(browser, path)
    assert not p.errors and p.requests == [path.as_uri()]
    p.page.fill("#search", "systemd")
    matching = [f for f in latest.files if "systemd" in f.path.lower() or "systemd" in f.component]
    assert p.page.locator("#file-table tbody tr:not([hidden])").count() == len(matching)
    p.page.close()
