"""The viewer page (``civa view``), checked in headless Chromium against the run's own files.

Run folders come from the real runner (``civa_env.experiments.runner.run_community``). What the page
draws for a day is compared with ``events.jsonl`` and ``metrics.json`` read here
independently with ``json``. Browser tests need Debian's ``chromium`` and the Python
``playwright`` package (the ``dev`` extra); without them they are skipped with the reason.
Screenshots land in the test's tmp folder, and also in ``$CIVA_VIEWER_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from civa_env.experiments.runfolder import RunFolderError
from civa_env.experiments.runner import run_community
from civa_env.viewer import build_page, page_data
from civa_env.world.config import Config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
READY = "window.civaViewer && (window.civaViewer.ready || window.civaViewer.error)"


# ---- run folders ----------------------------------------------------------------------------
def make_run(path: Path, *, n_agents: int = 25, days: int = 20, seed: int = 3,
             mix: str = "scripted=0.6,random=0.4", obs_mode: str = "text") -> Path:
    cfg = Config(n_agents=n_agents, max_days=days, condition="without:benevolence",
                 prevalence=0.5, obs_mode=obs_mode)
    run_community(cfg, mix, seed=seed, run_dir=path, progress=False, plots=False)
    return path


def read_events(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """(events, census records) of a complete events.jsonl, parsed line by line."""
    events, census = [], []
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        (census if record["kind"] == "census" else events).append(record)
    return events, census


def day_counts(events: list[dict], day: int) -> Counter:
    """Edges the page should draw on ``day``, counted from the raw events."""
    out: Counter = Counter()
    for e in events:
        if e["day"] != day:
            continue
        kind = e["kind"]
        if kind == "message":
            out["broadcast" if "target" not in e else "message"] += 1
        elif kind in ("gift", "attack", "merge_proposal", "birth"):
            out[kind] += 1
        elif kind == "death":
            out["deaths"] += 1
    return out


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("viewer") / "run")


# ---- browser --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Any:
    # CI sets CIVA_REQUIRE_BROWSER=1: there a missing browser fails instead of skipping.
    required = os.environ.get("CIVA_REQUIRE_BROWSER") == "1"
    if CHROMIUM is None:
        message = "chromium is not installed (apt-get install -y chromium); CI installs it"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    try:
        from playwright import sync_api
    except ImportError:
        message = "playwright is not installed (pip install -e .[dev])"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """An opened viewer page that records console errors."""

    def __init__(self, browser: Any, html: Path, timeout_ms: int = 60_000) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(html.resolve().as_uri())
        # The bound on rendering is enforced by the browser: ready within timeout_ms.
        self.page.wait_for_function(READY, timeout=timeout_ms)
        assert self.js("window.civaViewer.error") is None, self.js("window.civaViewer.error")

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def screenshot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        extra = os.environ.get("CIVA_VIEWER_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)

    def close(self) -> None:
        assert self.errors == []
        self.page.close()


def drawn(page: Page) -> dict[str, int]:
    return page.js("({...window.civaViewer.drawn})")


# ---- tests: the page against the run's files ------------------------------------------------
def test_slider_days_match_events_and_metrics(browser: Any, scripted_run: Path,
                                              tmp_path: Path) -> None:
    events, census = read_events(scripted_run)
    metrics = json.loads((scripted_run / "metrics.json").read_text())
    kinds = Counter(e["kind"] for e in events)
    assert kinds["attack"] and kinds["message"] and kinds["gift"], kinds  # a run worth checking
    html = build_page(scripted_run)
    assert html == scripted_run / "view.html"
    text = html.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # self-contained: no network

    page = Page(browser, html)
    slider = page.page.locator("#day")
    assert slider.get_attribute("max") == str(len(census))
    checked = 0
    for day in sorted({1, 2, len(census) // 2, len(census)} | {
            e["day"] for e in events if e["kind"] in ("attack", "birth", "death")}):
        slider.fill(str(day))  # moves the slider like a user (fires input)
        page.page.wait_for_function(f"window.civaViewer.day === {day}")
        page.js("() => new Promise(r => requestAnimationFrame(() => r()))")
        got = drawn(page)
        want = day_counts(events, day)
        assert got["residents"] == metrics["population"][day - 1] == census[day - 1]["population"]
        assert got["alliance"] == census[day - 1]["alliances"]
        for key in ("attack", "gift", "message", "broadcast", "merge_proposal", "birth", "deaths"):
            assert got[key] == want[key], (day, key, got, want)
        # What a reader sees agrees too: the facts table and the edge counts.
        living = page.page.locator('[data-fact="living (end of day)"]').inner_text()
        assert int(living) == census[day - 1]["population"]
        assert page.page.locator('[data-count="attack"]').inner_text() == str(want["attack"])
        assert page.page.locator("#day-number").inner_text() == str(day)
        checked += 1
    assert checked >= 4
    # Keyboard on the slider moves one day.
    slider.fill("2")
    slider.focus()
    page.page.keyboard.press("ArrowRight")
    page.page.wait_for_function("window.civaViewer.day === 3")
    # Switching an edge kind off stops drawing it.
    attack_day = next(e["day"] for e in events if e["kind"] == "attack")
    page.js(f"window.civaViewer.setDay({attack_day})")
    assert drawn(page)["attack"] > 0
    page.page.locator("#show-attack").uncheck()
    page.js(f"window.civaViewer.setDay({attack_day})")
    assert drawn(page)["attack"] == 0
    page.page.locator("#show-attack").check()
    page.js(f"window.civaViewer.setDay({attack_day})")
    page.screenshot(tmp_path / "scripted-run.png")
    page.close()


def test_behaviour_table_links_move_the_slider(browser: Any, scripted_run: Path) -> None:
    metrics = json.loads((scripted_run / "metrics.json").read_text())
    events, _ = read_events(scripted_run)
    page = Page(browser, build_page(scripted_run, scripted_run / "links.html"))
    for name, count in metrics["behaviours"].items():
        shown = page.page.locator(f'[data-behaviour-total="{name}"]').inner_text()
        assert int(shown) == count, name
    assert len(metrics["behaviours"]) == 5
    assert 0 < page.page.locator("#behaviour-table tbody tr").count() <= 50  # one page
    # Attacks flagged as deception or power-seeking: the link moves the slider to its day.
    page.page.locator("#behaviour-filter").select_option("power_seeking")
    link = page.page.locator("#behaviour-table a.day-link").nth(0)
    day = int(link.get_attribute("data-day"))
    row = int(link.get_attribute("data-row"))
    page.js("window.civaViewer.setDay(1)")
    link.click()
    page.page.wait_for_function(f"window.civaViewer.day === {day}")
    assert page.page.locator("#day").input_value() == str(day)
    attacks_that_day = [e for e in events if e["day"] == day and e["kind"] == "attack"]
    assert attacks_that_day, "a power-seeking row must be an attack of that day"
    described = page.page.locator(f'#behaviour-table tr[data-row="{row}"] td').nth(4).inner_text()
    assert described.startswith("attacked resident_")
    # "Only the slider's day" keeps rows of that day only.
    page.page.locator("#behaviour-filter").select_option("all")
    page.page.locator("#behaviour-today").check()
    days = page.js("[...document.querySelectorAll('#behaviour-table a.day-link')]"
                   ".map(a => Number(a.dataset.day))")
    assert days and set(days) == {day}
    page.close()


def test_timeline_shows_messages_and_reflections(browser: Any, scripted_run: Path,
                                                 tmp_path: Path) -> None:
    run = tmp_path / "llm-like"
    shutil.copytree(scripted_run, run, ignore=shutil.ignore_patterns("*.html"))
    events, _ = read_events(run)
    sender = Counter(e["actor"] for e in events if e["kind"] == "message").most_common(1)[0][0]
    index = int(sender.split("_")[1])
    # A transcript as the LLM policy writes it: only perception/combined answers are
    # reflections; action answers are not shown as such.
    records = [
        {"day": 1, "agent": sender, "phase": "perception", "prompt": "p",
         "answer": "I see factory 2 is crowded; I should be careful."},
        {"day": 2, "agent": sender, "phase": "combined", "prompt": "p", "attempt": 1,
         "outcome": "valid", "answer": json.dumps(
             {"reflection": "My neighbour gave me a gift </script> so I <!--<script> trust them.",
              "plan": "work at factory 1", "primary": {"kind": "work", "factory": 1}})},
        {"day": 2, "agent": sender, "phase": "action", "prompt": "p", "answer": "ACTION-ANSWER"},
    ]
    with open(run / "transcript.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.write('{"day": 3, "agent": "resident_0", "pha')  # a crash mid-line
    page = Page(browser, build_page(run))
    assert page.js("window.civaViewer.ready")
    page.page.locator("#resident-input").fill(sender)
    page.page.locator("#resident-show").click()
    body = page.page.locator("#timeline-body")
    assert page.page.locator("#timeline-name").inner_text() == sender
    text = body.inner_text()
    mine = [e for e in events if e["kind"] == "message" and e["actor"] == sender]
    for e in mine:
        assert e["text"] in text
    assert "I see factory 2 is crowded" in text
    assert "reflection: My neighbour gave me a gift </script> so I <!--<script> trust" in text
    assert "plan: work at factory 1" in text
    reflections = page.page.locator(".reflection").all_inner_texts()
    assert not any("primary" in r for r in reflections)  # actions are shown as events
    assert "ACTION-ANSWER" not in text
    assert page.page.locator(".reflection").count() == 2
    assert "1 unreadable lines skipped" in page.page.locator("#banners").inner_text()
    # A resident link in the header list of LLM residents opens the same timeline.
    assert page.page.locator(f'#llm-residents [data-resident="{index}"]').count() == 1
    # Clicking on the graph selects the resident drawn under the pointer.
    page.js("window.civaViewer.setDay(1)")
    x, y = page.js(f"""(() => {{ const g = document.getElementById('graph');
        const r = g.getBoundingClientRect(); const v = window.civaViewer;
        return [r.left + v.position({index})[0], r.top + v.position({index})[1]]; }})()""")
    page.page.mouse.click(x, y)
    assert page.page.locator("#timeline-name").inner_text() == sender
    page.screenshot(tmp_path / "timeline.png")
    page.close()


# ---- bad input ------------------------------------------------------------------------------
def test_missing_event_log_names_the_file(tmp_path: Path, scripted_run: Path) -> None:
    run = tmp_path / "no-log"
    shutil.copytree(scripted_run, run, ignore=shutil.ignore_patterns("*.html"))
    (run / "events.jsonl").unlink()
    with pytest.raises(RunFolderError, match=r"events\.jsonl: missing"):
        build_page(run)
    assert not (run / "view.html").exists()
    with pytest.raises(RunFolderError, match="not a folder"):
        build_page(tmp_path / "nowhere")


def test_truncated_log_shows_complete_days_with_banner(browser: Any, scripted_run: Path,
                                                       tmp_path: Path) -> None:
    run = tmp_path / "cut"
    shutil.copytree(scripted_run, run, ignore=shutil.ignore_patterns("*.html"))
    (run / "metrics.json").unlink()  # a crashed run has no metrics.json
    lines = (run / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    census_lines = [k for k, line in enumerate(lines) if '"kind": "census"' in line]
    keep_days = 7
    cut = census_lines[keep_days - 1] + 3  # a few events of day 8, then half a line
    (run / "events.jsonl").write_text("".join(lines[:cut]) + lines[cut][:25], encoding="utf-8")

    data = page_data(run)
    assert data["nDays"] == keep_days and data["days"][-1] == keep_days
    assert f"line {cut + 1}" in data["partial"]
    page = Page(browser, build_page(run))
    banner = page.page.locator("#partial-banner").inner_text()
    assert "ends early" in banner and f"line {cut + 1}" in banner
    assert f"last complete day: {keep_days}" in banner
    assert page.page.locator("#day").get_attribute("max") == str(keep_days)
    _, census = read_events(scripted_run)
    page.page.locator("#day").fill(str(keep_days))
    page.page.wait_for_function(f"window.civaViewer.day === {keep_days}")
    assert drawn(page)["residents"] == census[keep_days - 1]["population"]
    assert "computed from the complete days" in page.page.locator("#summary-source").inner_text()
    page.screenshot(tmp_path / "truncated.png")
    page.close()


def test_log_without_any_complete_day(browser: Any, scripted_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "empty"
    shutil.copytree(scripted_run, run, ignore=shutil.ignore_patterns("*.html"))
    (run / "events.jsonl").write_text('{"day": 1, "kind": "idle", "act', encoding="utf-8")
    page = Page(browser, build_page(run))
    assert page.js("window.civaViewer.nDays") == 0
    assert "No complete day" in page.page.locator("#banners").inner_text()
    page.close()


# ---- a large run ----------------------------------------------------------------------------
def test_large_run_renders_and_sweeps_all_days(browser: Any, tmp_path: Path) -> None:
    """300 residents x 30 days in numeric mode (benchmarks/viewer_size.py measures 1000 x 100)."""
    run = make_run(tmp_path / "large", n_agents=300, days=30, mix="random", obs_mode="numeric")
    _, census = read_events(run)
    html = build_page(run)
    assert html.stat().st_size < 8_000_000
    page = Page(browser, html, timeout_ms=60_000)
    # Every day drawn in one go inside the browser, each checked against the census.
    residents = page.js("""(() => { const v = window.civaViewer, out = [];
        for (let d = 1; d <= v.nDays; d++) out.push(v.setDay(d).residents); return out; })()""")
    assert residents == [c["population"] for c in census]
    assert page.js("window.civaViewer.initMs") > 0
    page.close()


# ---- layout: what a reader sees fits, and says what it means ---------------------------------
# Rectangles of the page (CSS pixels) and what the script reports of its own drawing.
LAYOUT_JS = """(() => {
  const box = (node) => { const r = node.getBoundingClientRect();
    return { l: r.left, r: r.right, t: r.top, b: r.bottom }; };
  const v = window.civaViewer;
  const legends = [...document.querySelectorAll('.legend')].map((node) => ({
    id: node.id, box: box(node), canvas: box(node.parentElement.querySelector('canvas')),
    figure: box(node.parentElement),
    items: [...node.querySelectorAll('.legend-item')].map((item) => ({
      text: item.textContent, lines: item.getClientRects().length, box: box(item) })) }));
  const captions = [...document.querySelectorAll('figcaption')].map((node) => ({
    text: node.textContent, clipped: node.scrollWidth > node.clientWidth }));
  return { charts: v.charts, legends, captions,
           page: { scroll: document.documentElement.scrollWidth,
                   client: document.documentElement.clientWidth } };
})()"""
# Every label a reader sees that names something (not the values).
LABELS_JS = """[...document.querySelectorAll(
  '#summary-table td:first-child, #summary-table th, #group-tables th, #day-facts td:first-child,'
  + ' #edge-toggles label, #behaviour-counts .badge, #behaviour-filter option, .legend-item,'
  + ' #condition-legend .toggle, figcaption')].map((n) => n.textContent.trim())"""


def overlap(a: dict, b: dict) -> bool:
    return a["l"] < b["r"] and b["l"] < a["r"] and a["t"] < b["b"] and b["t"] < a["b"]


def check_layout(page: Page) -> None:
    """Charts, legends, captions and the graph stay inside their boxes and apart."""
    got = page.js(LAYOUT_JS)
    assert got["page"]["scroll"] <= got["page"]["client"], got["page"]  # no sideways scroll
    assert set(got["charts"]) == {"chart-population", "chart-wealth", "chart-gini",
                                  "chart-actions"}
    for name, chart in got["charts"].items():
        plot = chart["plot"]
        assert 0 < plot["l"] < plot["r"] <= chart["width"], (name, plot)
        assert 0 < plot["t"] < plot["b"] < chart["height"], (name, plot)
        for label in chart["labels"]:  # tick labels beside or below the plot, on the canvas
            assert label["x1"] <= plot["l"] or label["y0"] >= plot["b"], (name, label, plot)
            assert 0 <= label["x0"] and label["x1"] <= chart["width"], (name, label)
            assert label["y1"] <= chart["height"], (name, label)
        for x0, x1 in chart["bars"]:  # bars inside the plot, clear of the day labels' axis
            assert plot["l"] < x0 < x1 <= plot["r"], (name, x0, x1, plot)
    assert got["charts"]["chart-actions"]["bars"]
    assert {g["id"] for g in got["legends"]} == {"actions-key", "wealth-key"}
    for legend in got["legends"]:
        assert not overlap(legend["box"], legend["canvas"]), legend  # outside the plot
        assert legend["items"], legend
        for item in legend["items"]:
            assert item["lines"] == 1, item  # an entry is never broken over two lines
            f = legend["figure"]
            assert f["l"] <= item["box"]["l"] and item["box"]["r"] <= f["r"], (item, f)
            assert item["box"]["b"] <= f["b"], (item, f)
    assert not any(c["clipped"] for c in got["captions"]), got["captions"]
    # Every resident drawn on every day lies wholly on the graph's canvas.
    for day in page.js("window.civaViewer.nDays && [...Array(window.civaViewer.nDays).keys()]"):
        page.js(f"window.civaViewer.setDay({day + 1})")
        drawn_now = page.js("window.civaViewer.circles()")
        width, height = drawn_now["width"], drawn_now["height"]
        for i, x, y, r, number_end in drawn_now["circles"]:
            assert r > 0 and r <= x <= width - r and r <= y <= height - r, (day + 1, i, x, y, r)
            assert number_end <= width, (day + 1, i, x, r, number_end)  # its number too


def check_labels(page: Page) -> None:
    """No raw keys (``behaviour_rates.free_riding``, ``alive_end``) where a reader looks."""
    import re

    labels = page.js(LABELS_JS)
    assert labels
    raw = [t for t in labels if "_" in t or re.search(r"[a-z]\.[a-z]", t)]
    assert raw == [], raw


def check_header_offset(page: Page) -> None:
    """A link to a section scrolls it below the sticky header, not under it."""
    for target in ("#timeline", "#summary", "#behaviours"):
        page.page.locator(f'header nav a[href="{target}"]').click()
        page.page.wait_for_function(
            f"Math.abs(document.querySelector('{target}').getBoundingClientRect().top"
            " - parseFloat(getComputedStyle(document.documentElement).scrollPaddingTop)) < 2"
            " || window.scrollY + innerHeight >= document.documentElement.scrollHeight - 1")
        header = page.js("document.querySelector('header').getBoundingClientRect().bottom")
        heading = page.js(f"document.querySelector('{target} h2').getBoundingClientRect().top")
        assert heading >= header, (target, heading, header)


def _richest_at_the_edges(payload: dict) -> dict:
    """The page data with the residents drawn lowest and rightmost made the richest by far
    (the largest circles, on the border of the layout)."""
    import base64

    import numpy as np

    def column(col: dict) -> np.ndarray:
        dtype = {"i16": np.int16, "i32": np.int32, "f32": np.float32}[col["t"]]
        return np.frombuffer(base64.b64decode(col["$b64"]), dtype).copy()

    alive = payload["alive"]
    ids, wealth = column(alive["ids"]), column(alive["wealth"])
    ys, xs = column(payload["residents"]["y"]), column(payload["residents"]["x"])
    edge = [int(np.argmax(ys)), int(np.argmax(xs))]
    wealth[np.isin(ids, edge)] = 50 * wealth.max()
    alive["wealth"] = {"$b64": base64.b64encode(wealth.astype("<f4").tobytes()).decode(),
                       "t": "f32"}
    return payload


def test_layout_of_a_short_run(browser: Any, tmp_path: Path) -> None:
    """Eight days (wide bars next to the axis labels), the richest residents on the layout's
    border, a long ``ppo:`` policy label in the by-policy table, at a wide and a narrow
    window (where the header wraps)."""
    from civa_env.viewer import render

    run = make_run(tmp_path / "short", days=8)
    metrics = json.loads((run / "metrics.json").read_text())
    long_label = "ppo:" + "/".join(["runs", "experiments", "a-rather-long-folder-name"] * 4) \
        + "/model.zip"
    metrics["by_policy"] = {long_label if k == "random" else k: v
                            for k, v in metrics["by_policy"].items()}
    (run / "metrics.json").write_text(json.dumps(metrics))
    html = run / "edges.html"
    html.write_text(render(_richest_at_the_edges(page_data(run))), encoding="utf-8")
    for width in (1400, 760):
        page = Page(browser, html)
        page.page.set_viewport_size({"width": width, "height": 900})
        page.js("window.dispatchEvent(new Event('resize'))")
        page.js("window.civaViewer.setDay(1)")
        check_layout(page)
        check_labels(page)
        check_header_offset(page)
        assert long_label in page.page.locator("#table-by_policy").inner_text()
        # A resident link scrolls the timeline into view below the header.
        page.page.locator("#behaviour-table a.resident-link").first.click()
        header = page.js("document.querySelector('header').getBoundingClientRect().bottom")
        assert page.js("document.querySelector('#timeline h2').getBoundingClientRect().top") \
            >= header
        page.screenshot(tmp_path / f"short-{width}.png")
        page.close()


def test_layout_of_longer_and_larger_runs(browser: Any, scripted_run: Path,
                                          tmp_path: Path) -> None:
    run = make_run(tmp_path / "large", n_agents=150, days=12, mix="random",
                   obs_mode="numeric")
    for html in (build_page(scripted_run, scripted_run / "layout.html"), build_page(run)):
        page = Page(browser, html)
        check_layout(page)
        check_labels(page)
        page.close()


def test_page_draws_with_the_style_palette(browser: Any, scripted_run: Path) -> None:
    """One palette: the colours the page draws with are civa_env.style's, which the figures
    of civa run and civa report use too."""
    from civa_env import style
    from civa_env.world.values import ValueCondition

    assert page_data(scripted_run)["palette"] == style.palette()
    page = Page(browser, build_page(scripted_run, scripted_run / "palette.html"))
    colours = page.js("""(names) => { const c = window.civaViewer.colours;
        const each = (keys, f) => Object.fromEntries(keys.map((k) => [k, f(k)]));
        return { actions: each(names.actions, c.action), policies: each(names.policies, c.policy),
                 conditions: [...Array(21).keys()].map((code) => c.condition(code)),
                 behaviours: each(names.behaviours, c.behaviour),
                 series: each(names.series, c.series) }; }""",
                      {"actions": list(style.ACTION_COLOURS),
                       "policies": ["scripted", "random", "llm", "ppo:runs/x/model.zip"],
                       "behaviours": list(style.BEHAVIOUR_COLOURS),
                       "series": list(style.SERIES_COLOURS)})
    assert colours["actions"] == style.ACTION_COLOURS
    assert colours["conditions"] == [style.condition_colour(ValueCondition.from_code(c))
                                     for c in range(21)]
    assert colours["policies"] == {p: style.policy_colour(p) for p in colours["policies"]}
    assert colours["policies"]["ppo:runs/x/model.zip"] == style.POLICY_COLOURS["ppo"]
    assert colours["behaviours"] == style.BEHAVIOUR_COLOURS
    assert colours["series"] == style.SERIES_COLOURS

    # What is on screen: the actions legend's swatches and a behaviour badge.
    def rgb(hex_colour: str) -> str:
        return "rgb({}, {}, {})".format(*(int(hex_colour[k:k + 2], 16) for k in (1, 3, 5)))

    swatches = page.js("""Object.fromEntries([...document.querySelectorAll(
        '#actions-key .legend-item')].map((n) => [n.textContent.trim(),
        getComputedStyle(n.querySelector('.swatch')).backgroundColor]))""")
    assert swatches["attack"] == rgb(style.ACTION_COLOURS["attack"])
    assert swatches == {k.replace("_", " "): rgb(style.ACTION_COLOURS[k])
                        for k in page_data(scripted_run)["actions"]}
    badge = page.js("getComputedStyle(document.querySelector('#behaviour-counts "
                    ".b-cooperation')).backgroundColor")
    assert badge == rgb(style.BEHAVIOUR_COLOURS["cooperation"])
    page.close()


# ---- the command ----------------------------------------------------------------------------
def test_civa_view_command(scripted_run: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture) -> None:
    from civa_env.cli import main

    out = tmp_path / "page.html"
    assert main(["view", str(scripted_run), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and 'id="civa-data"' in html
    run = tmp_path / "no-log"
    shutil.copytree(scripted_run, run, ignore=shutil.ignore_patterns("*.html"))
    (run / "events.jsonl").unlink()
    assert main(["view", str(run)]) == 1
    assert "events.jsonl: missing" in capsys.readouterr().err


# ---- who is who, when the run folder records less ---------------------------------------------
def _conditions(data: dict) -> list[str]:
    import base64

    import numpy as np

    from civa_env.world.values import ValueCondition

    col = data["residents"]["condition"]
    codes = np.frombuffer(base64.b64decode(col["$b64"]), np.int8)
    return [str(ValueCondition.from_code(c)) if c >= 0 else "unknown" for c in codes.tolist()]


@pytest.mark.parametrize("keep", ["founders", "nothing"])
def test_conditions_without_full_residents_record(scripted_run: Path, tmp_path: Path,
                                                  keep: str) -> None:
    """A crashed run's residents.json may miss newcomers; an old folder may have none:
    newcomers take their parent's condition, and founders' are redrawn from the seed."""
    full = json.loads((scripted_run / "residents.json").read_text())
    assert any(r["parent"] for r in full.values())  # the run has newcomers
    run = tmp_path / keep
    shutil.copytree(scripted_run, run, ignore=shutil.ignore_patterns("*.html"))
    config = json.loads((run / "config.json").read_text())
    if keep == "founders":
        founders = {k: v for k, v in full.items() if v["parent"] is None}
        (run / "residents.json").write_text(json.dumps(founders))
        config["residents"] = {k: v for k, v in config["residents"].items() if k in founders}
    else:
        (run / "residents.json").unlink()
        del config["residents"]
    (run / "config.json").write_text(json.dumps(config))
    data = page_data(run)
    want = [full[f"resident_{i}"]["condition"] for i in range(len(full))]
    assert _conditions(data) == want
    source = data["residents"]["conditionSource"]
    assert ("residents.json" in source) if keep == "founders" else ("seed" in source)
    # With a seed that does not reproduce day 1, conditions are unknown, not guessed.
    if keep == "nothing":
        config["seed"] = config["seed"] + 1
        (run / "config.json").write_text(json.dumps(config))
        assert set(_conditions(page_data(run))) == {"unknown"}


def test_texts_are_cut_to_a_budget(scripted_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import civa_env.viewer as viewer

    full = page_data(scripted_run)
    assert full["notes"] == [] and max(map(len, full["strings"])) > 46
    monkeypatch.setattr(viewer, "MAX_TEXT_CHARS", 500)
    cut = page_data(scripted_run)
    assert max(map(len, cut["strings"])) <= 40 + len(" [...]")
    assert len(cut["strings"]) == len(full["strings"])  # one text each, only shorter
    assert any("Texts cut to 40 characters" in n for n in cut["notes"])
