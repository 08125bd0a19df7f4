"""The Dead Neurons tab in a real browser, served by a real ``tensorboard``.

One module-wide set-up: real monitored fits (``no_fix``, ``revive`` and
``leaky_relu``, see :mod:`dashboard.logs`), one ``tensorboard`` process and one headless
Debian Chromium driven by Playwright; each test opens a fresh page. What the
page shows is compared with the plugin's JSON routes and the fit's fix
events. Every test also checks that the page logged no console error and
asked nothing of any host but 127.0.0.1.

Screenshots of the three views go to ``$KERAS_DEADRELU_SCREENSHOTS``, else
``build/dashboard_screenshots/`` at the repository root.
"""

from __future__ import annotations

import os
import re
import struct
import time
import urllib.parse
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from dashboard.logs import RUNS, SITES, write_runs
from dashboard.tensorboard_server import TensorBoardServer

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
PLUGIN = "data/plugin/dead_neurons/"
IFRAME = 'iframe[src*="plugin_entry.html?name=dead_neurons"]'
REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_MS = 20_000


def screenshot_dir() -> Path:
    folder = os.environ.get("KERAS_DEADRELU_SCREENSHOTS")
    path = Path(folder) if folder else REPO_ROOT / "build" / "dashboard_screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header; fails on anything but a PNG."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


# --------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} not found: the browser tests drive Debian's Chromium. "
            "Install Debian's chromium package (apt-get install chromium); "
            "do not run `playwright install`.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=LAUNCH_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("browser_logs")
    write_runs(str(log_dir))
    with TensorBoardServer(log_dir) as running:
        # TensorBoard reads the logs in the background: wait for every run.
        running.wait_for_json(
            PLUGIN + "runs", lambda answer: len(answer["runs"]) == len(RUNS)
        )
        yield running


class Tab:
    """One browser page on TensorBoard, with the Dead Neurons iframe."""

    def __init__(self, page, server: TensorBoardServer):
        self.page = page
        self.server = server
        self.frame = page.frame_locator(IFRAME)
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def goto(self) -> None:
        self.page.goto(self.server.url + "#dead_neurons")
        self.page.locator(IFRAME).wait_for(timeout=TIMEOUT_MS)

    def open_run(self, run: str):
        """Shows the overview of `run`; returns the route's overview JSON."""
        self.frame.locator("#overview").wait_for(timeout=TIMEOUT_MS)
        self.frame.locator("#run-select").select_option(run)
        self.frame.locator(f'#overview[data-run="{run}"]').wait_for(timeout=TIMEOUT_MS)
        return self.json(f"overview?run={urllib.parse.quote(run)}")

    def json(self, route: str):
        return self.server.get_json(PLUGIN + route)

    @property
    def tooltip(self):
        return self.frame.locator("#tooltip")

    def screenshot(self, name: str) -> Path:
        """Saves the page as `name`; checks the file is a full-size PNG."""
        self.page.mouse.move(2, 790)  # no tooltip left over the view
        path = screenshot_dir() / name
        self.page.screenshot(path=str(path))
        assert png_size(path) == (VIEWPORT["width"], VIEWPORT["height"])
        assert path.stat().st_size > 20_000, f"{path} is nearly empty"
        return path

    def assert_clean(self, allowed_errors: tuple[str, ...] = ()) -> None:
        errors = [e for e in self.errors if not any(a in e for a in allowed_errors)]
        assert errors == [], errors
        foreign = []
        for url in self.requests:
            parts = urllib.parse.urlparse(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.hostname != "127.0.0.1":
                foreign.append(url)
        assert foreign == [], f"requests outside 127.0.0.1: {foreign}"
        assert any(PLUGIN in url for url in self.requests)


@pytest.fixture
def tab(browser, server):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        yield Tab(page, server)
    finally:
        context.close()


def js_percent(fraction: float) -> str:
    """``(fraction * 100).toFixed(1)`` as JavaScript writes it (ties go up)."""
    exact = Decimal(fraction * 100)  # the double's exact value, as toFixed sees it
    return str(exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def hover_cell(tab: Tab, site: str, column: int, columns: int) -> None:
    canvas = tab.frame.locator(f'.heatmap-row[data-site="{site}"] canvas')
    box = canvas.bounding_box()
    # A quarter into the cell, near its top: clear of a fix marker's diamond.
    canvas.hover(position={"x": (column + 0.25) * box["width"] / columns, "y": 2})


# ------------------------------------------------------------------------ tests
def test_tab_shows_the_plugin_iframe_with_every_run(tab):
    tab.goto()
    expect(tab.page.locator(IFRAME)).to_be_visible()
    tab_button = tab.page.get_by_role("tab", name=re.compile("dead neurons", re.I))
    expect(tab_button).to_be_visible()
    runs = [entry["run"] for entry in tab.json("runs")["runs"]]
    assert runs == sorted(RUNS)
    select = tab.frame.locator("#run-select")
    expect(select.locator("option")).to_have_text(runs)
    expect(tab.frame.locator('label[for="run-select"]')).to_have_text("Run")
    for button in ("#overview-button", "#compare-toggle", "#reload-button"):
        assert tab.frame.locator(button).evaluate("node => node.tagName") == "BUTTON"
    tab.assert_clean()


def test_overview_has_one_row_per_site_in_model_order(tab):
    tab.goto()
    overview = tab.open_run("revive")
    names = [site["name"] for site in overview["sites"]]
    assert names == list(SITES)
    rows = tab.frame.locator(".heatmap-row")
    expect(rows).to_have_count(len(SITES))
    assert [row.get_attribute("data-site") for row in rows.all()] == names
    expect(tab.frame.locator(".heatmap-row canvas")).to_have_count(len(SITES))
    # The whole-model line: one point per column, above the heatmap.
    line = tab.frame.locator("#model-line")
    expect(line.locator("path.series-line")).to_have_count(1)
    expect(line.locator("circle.series-dot")).to_have_count(len(overview["steps"]))
    line_box = line.bounding_box()
    heatmap_box = tab.frame.locator("#heatmap").bounding_box()
    assert line_box["y"] + line_box["height"] <= heatmap_box["y"] + 1
    assert tab.frame.locator("#heatmap").get_attribute("data-columns") == str(
        len(overview["steps"])
    )
    expect(tab.frame.locator(".legend").first).to_contain_text("Dead units")
    tab.screenshot("dashboard_overview.png")
    tab.assert_clean()


def test_hovering_a_cell_shows_site_step_and_dead_percent(tab):
    tab.goto()
    overview = tab.open_run("revive")
    columns = len(overview["steps"])
    checked = 0
    for index, site in enumerate(overview["sites"]):
        for column in (0, columns - 1):
            fraction = overview["dead_fraction"][index][column]
            hover_cell(tab, site["name"], column, columns)
            expect(tab.tooltip).to_be_visible()
            text = tab.tooltip.inner_text()
            assert text.splitlines()[0].startswith(site["name"]), text
            assert re.search(rf"Step\s+{overview['steps'][column]}\b", text), text
            assert f"{js_percent(fraction)}%" in text, text
            dead = overview["dead"][index][column]
            units = overview["units"][index][column]
            assert f"{dead}/{units} dead" in text, text
            checked += 1
    assert checked == 2 * len(SITES)
    tab.frame.locator("h2").first.hover()
    expect(tab.tooltip).to_be_hidden()
    tab.assert_clean()


def test_fix_markers_show_the_diagnosis_and_only_where_fixes_ran(tab):
    tab.goto()
    overview = tab.open_run("revive")
    events = overview["fix_events"]
    assert events, "the revive run should have fix events"
    markers = tab.frame.locator("#heatmap .fix-marker")
    expect(markers).to_have_count(len({(e["step"], e["site"]) for e in events}))
    shown = {
        (int(m.get_attribute("data-step")), m.get_attribute("data-site"))
        for m in markers.all()
    }
    assert shown == {(e["step"], e["site"]) for e in events}
    for event in (events[0], events[-1]):
        marker = tab.frame.locator(
            f'#heatmap .heatmap-row[data-site="{event["site"]}"] '
            f'.fix-marker[data-step="{event["step"]}"]'
        )
        assert marker.get_attribute("data-fix") == event["fix"]
        marker.hover()
        expect(tab.tooltip).to_be_visible()
        expect(tab.tooltip).to_contain_text(f"Fix: {event['fix']}")
        expect(tab.tooltip).to_contain_text(event["message"])
        expect(tab.tooltip).to_contain_text(event["diagnosis"])
        # The marker sits on its site's row, over the column of its step.
        row_box = tab.frame.locator(
            f'.heatmap-row[data-site="{event["site"]}"] canvas'
        ).bounding_box()
        box = marker.bounding_box()
        column = overview["steps"].index(event["step"])
        width = row_box["width"] / len(overview["steps"])
        left = row_box["x"] + column * width
        assert left <= box["x"] + box["width"] / 2 <= left + width
        top = row_box["y"]
        assert top <= box["y"] + box["height"] / 2 <= top + row_box["height"]
    tab.open_run("no_fix")
    expect(tab.frame.locator(".heatmap-row")).to_have_count(len(SITES))
    expect(tab.frame.locator(".fix-marker")).to_have_count(0)
    tab.assert_clean()


def test_site_detail_of_h1_maps_its_32_units(tab):
    tab.goto()
    tab.open_run("revive")
    detail = tab.json("site?run=revive&site=h1")
    assert len(detail["unit_permille"]) == 32
    tab.frame.locator('.heatmap-row[data-site="h1"] .site-label').click()
    section = tab.frame.locator('#site-detail[data-site="h1"]')
    expect(section).to_be_visible()
    expect(section.locator(".site-title")).to_have_text("h1")
    expect(section).to_contain_text("relu · 32 units")
    unit_map = section.locator("canvas#unit-map")
    assert unit_map.get_attribute("data-units") == "32"
    assert unit_map.get_attribute("data-columns") == str(len(detail["unit_steps"]))
    assert unit_map.bounding_box()["height"] >= 32
    expect(section.locator("#site-dead-line path.series-line")).to_have_count(2)
    expect(section.locator("#counts-chart path.series-line")).to_have_count(3)
    expect(section.locator("#selu-chart")).to_have_count(0)
    # Hover the last unit in the last column.
    box = unit_map.bounding_box()
    unit_map.hover(position={"x": box["width"] - 2, "y": box["height"] - 2})
    expect(tab.tooltip).to_contain_text("unit 31")
    expect(tab.tooltip).to_contain_text(str(detail["unit_steps"][-1]))
    permille = detail["unit_permille"][31][-1]
    rate = None if permille is None else permille / 1000
    expect(tab.tooltip).to_contain_text("NaN" if rate is None else f"{rate:.3f}")
    # h1's fix sits in the detail too, with its diagnosis.
    marker = section.locator(".fix-marker")
    expect(marker).to_have_count(len(detail["fix_events"]))
    marker.first.hover()
    expect(tab.tooltip).to_contain_text(detail["fix_events"][0]["diagnosis"])
    tab.screenshot("dashboard_site_detail.png")
    section.locator("#back-button").click()
    expect(tab.frame.locator('#overview[data-run="revive"]')).to_be_visible()
    tab.assert_clean()


def test_colour_scales_keep_their_ends_for_exactly_0_and_1(tab):
    # The units map gets rates in thousandths: 1 (0.1%) must not take the
    # colour of 0 (never fired), nor 999 that of 1000 (always).
    tab.goto()
    tab.frame.locator("#overview").wait_for()
    colours = tab.frame.locator("body").evaluate(
        """async () => {
            const colors = await import("/data/plugin/dead_neurons/static/colors.js");
            const at = [0, 0.001, 0.5, 0.999, 1];
            return [at.map(colors.rateRgb), at.map(colors.deadRgb)];
        }"""
    )
    for scale in colours:
        zero, low, middle, high, one = (tuple(rgb) for rgb in scale)
        assert len({zero, low, middle, high, one}) == 5, scale
    tab.assert_clean()


def test_selu_site_detail_shows_mean_and_std_against_0_and_1(tab):
    tab.goto()
    tab.open_run("revive")
    detail = tab.json("site?run=revive&site=s1")
    tab.frame.locator('.heatmap-row[data-site="s1"]').click()
    section = tab.frame.locator('#site-detail[data-site="s1"]')
    chart = section.locator("#selu-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("path.series-line")).to_have_count(2)
    assert sorted(
        float(line.get_attribute("data-y")) for line in chart.locator(".ref-line").all()
    ) == [0.0, 1.0]
    assert section.locator("#unit-map").get_attribute("data-units") == "8"
    # No fix acted on s1: no marker in its detail.
    expect(section.locator("#site-dead-line .fix-marker")).to_have_count(
        len(detail["fix_events"])
    )
    assert detail["fix_events"] == []
    assert all(value is not None for value in detail["selu_mean"])
    tab.assert_clean()


def test_runs_compared_shows_one_small_multiple_per_run(tab):
    tab.goto()
    tab.open_run("revive")
    runs = [entry["run"] for entry in tab.json("runs")["runs"]]
    tab.frame.locator("#compare-toggle").click()
    cards = tab.frame.locator(".small-multiple")
    expect(cards).to_have_count(len(runs))
    assert [card.get_attribute("data-run") for card in cards.all()] == runs
    assert tab.frame.locator("#compare-toggle").get_attribute("aria-pressed") == "true"
    for card in cards.all():
        expect(card.locator(".mini-label")).to_have_text(list(SITES))
        expect(card.locator("canvas")).to_have_count(1)
    revive = tab.frame.locator('.small-multiple[data-run="revive"]')
    no_fix = tab.frame.locator('.small-multiple[data-run="no_fix"]')
    assert revive.locator(".fix-marker").count() >= 1
    expect(no_fix.locator(".fix-marker")).to_have_count(0)
    expect(no_fix.locator(".badge")).to_have_text("no fix")
    tab.screenshot("dashboard_compare.png")
    no_fix.locator(".card-stats").click()
    expect(tab.frame.locator('#overview[data-run="no_fix"]')).to_be_visible()
    expect(tab.frame.locator("#run-select")).to_have_value("no_fix")
    tab.assert_clean()


def test_route_errors_and_missing_runs_are_shown(tab):
    tab.page.route(
        "**/" + PLUGIN + "overview?*",
        lambda route: route.fulfill(
            status=400, json={"error": "unknown run 'gone': no Dead Neurons data in it"}
        ),
    )
    tab.goto()
    error = tab.frame.locator(".error-box")
    expect(error).to_contain_text("unknown run 'gone': no Dead Neurons data in it")
    tab.page.unroute("**/" + PLUGIN + "overview?*")
    tab.page.route(
        "**/" + PLUGIN + "runs", lambda route: route.fulfill(json={"runs": []})
    )
    tab.frame.locator("#reload-button").click()
    expect(tab.frame.locator("#no-runs")).to_contain_text("No Dead Neurons data")
    expect(tab.frame.locator("#run-select")).to_be_disabled()
    tab.assert_clean(allowed_errors=("status of 400",))


def _synthetic_overview(run: str, sites: int, windows: int, long_name: str) -> dict:
    names = [long_name] + [f"block_{i}/dense" for i in range(1, sites)]
    fraction = [
        [None if (s + w) % 97 == 0 else ((s * 7 + w) % 50) / 49 for w in range(windows)]
        for s in range(sites)
    ]
    units = [[64] * windows for _ in range(sites)]
    dead = [[None if f is None else round(f * 64) for f in row] for row in fraction]
    return {
        "run": run,
        "sites": [{"name": n, "kind": "relu", "units": 64} for n in names],
        "steps": list(range(windows)),
        "step_ranges": [[w, w] for w in range(windows)],
        "windows": windows,
        "downsampled": False,
        "dead_fraction": fraction,
        "dead": dead,
        "units": units,
        "model_dead_fraction": [0.5] * windows,
        "fix_events": [
            {
                "step": windows // 2,
                "epoch": 0,
                "site": names[min(3, sites - 1)],
                "fix": "revive",
                "before": 10,
                "after": 0,
                "dead_fraction": 0.2,
                "message": "synthetic message",
                "diagnosis": "synthetic diagnosis",
            }
        ],
    }


def test_many_sites_many_windows_one_window_and_long_names(tab):
    long_name = "encoder/" + "very_long_block_name/" * 6 + "dense_relu"
    answers = {
        "big": _synthetic_overview("big", 100, 1000, long_name),
        "one": _synthetic_overview("one", 3, 1, long_name),
    }
    runs = {
        "runs": [
            {"run": r, "max_step": 0, "sites": [], "has_fix_events": True}
            for r in answers
        ]
    }
    tab.page.route("**/" + PLUGIN + "runs", lambda route: route.fulfill(json=runs))

    def overview(route):
        run = urllib.parse.parse_qs(urllib.parse.urlparse(route.request.url).query)
        route.fulfill(json=answers[run["run"][0]])

    tab.page.route("**/" + PLUGIN + "overview?*", overview)
    tab.goto()
    started = time.monotonic()
    tab.frame.locator('#overview[data-run="big"]').wait_for()
    expect(tab.frame.locator(".heatmap-row")).to_have_count(100)
    # Generous bounds (a loaded CI machine): they catch a DOM node per cell,
    # not a few hundred milliseconds.
    assert time.monotonic() - started < 15, "100 x 1000 windows drew too slowly"
    # Drawing (not fetching) the 100 x 1000 map, timed in the page.
    elapsed = tab.frame.locator("#run-select").evaluate(
        """async (select) => {
            const start = performance.now();
            select.value = "one"; select.dispatchEvent(new Event("change"));
            while (!document.querySelector('#overview[data-run="one"]'))
                await new Promise((r) => setTimeout(r, 5));
            select.value = "big"; select.dispatchEvent(new Event("change"));
            while (!document.querySelector('#overview[data-run="big"]'))
                await new Promise((r) => setTimeout(r, 5));
            return performance.now() - start;
        }"""
    )
    assert elapsed < 8000, f"re-drawing took {elapsed:.0f} ms"
    assert tab.frame.locator(".heatmap-row canvas").count() == 100
    assert tab.frame.locator("#heatmap").get_attribute("data-columns") == "1000"
    label = tab.frame.locator(f'.heatmap-row[data-site="{long_name}"] .site-name')
    assert label.evaluate("node => node.scrollWidth > node.clientWidth")
    assert long_name in label.locator("..").get_attribute("title")
    hover_cell(tab, "block_5/dense", 500, 1000)
    expect(tab.tooltip).to_contain_text("block_5/dense")
    expect(tab.frame.locator(".fix-marker")).to_have_count(1)
    # A run with a single window: one column, still readable and hoverable.
    tab.frame.locator("#run-select").select_option("one")
    tab.frame.locator('#overview[data-run="one"]').wait_for()
    assert tab.frame.locator("#heatmap").get_attribute("data-columns") == "1"
    expect(tab.frame.locator("#model-line circle.series-dot")).to_have_count(1)
    hover_cell(tab, "block_1/dense", 0, 1)
    expect(tab.tooltip).to_contain_text("block_1/dense")
    tab.assert_clean()


def test_names_and_messages_are_shown_as_text_never_as_html(tab):
    html = '<img src=x onerror="window.__pwned=1">'
    answer = _synthetic_overview(html, 3, 4, html)
    answer["fix_events"][0].update(message=html, diagnosis=html, site=html)
    runs = {"runs": [{"run": html, "max_step": 3, "sites": [], "has_fix_events": True}]}
    tab.page.route("**/" + PLUGIN + "runs", lambda route: route.fulfill(json=runs))
    tab.page.route(
        "**/" + PLUGIN + "overview?*", lambda route: route.fulfill(json=answer)
    )
    dialogs = []
    tab.page.on("dialog", lambda dialog: (dialogs.append(dialog), dialog.dismiss()))
    tab.goto()
    overview = tab.frame.locator("#overview")
    overview.wait_for()
    expect(tab.frame.locator(".heatmap-row").first).to_contain_text("<img src=x")
    tab.frame.locator(".fix-marker").first.hover()
    expect(tab.tooltip).to_contain_text(html)
    assert tab.frame.locator("img").count() == 0
    assert overview.evaluate("() => window.__pwned") is None
    assert dialogs == []
    tab.assert_clean()
