"""Size and build time of the viewer page (``civa view``), and its time to ready in Chromium.

    python benchmarks/viewer_size.py                      # 25 x 30 and 1000 x 100
    python benchmarks/viewer_size.py --sizes 1000x100 --policy scripted

Each size simulates a run folder with the runner (numeric observations), builds the page,
and reports the HTML size and the build time; with Chromium and playwright installed it
also opens the page and reports the page's own time to ready and the time to draw every day.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from civa_env.experiments.runner import run_community
from civa_env.viewer import build_page
from civa_env.world.config import Config

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_times(html: Path) -> tuple[float, float] | None:
    """(ms to ready, ms to draw every day) in headless Chromium, or None without one."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(html.resolve().as_uri())
        page.wait_for_function("window.civaViewer && window.civaViewer.ready", timeout=300_000)
        ready = page.evaluate("window.civaViewer.initMs")
        sweep = page.evaluate("""(() => { const v = window.civaViewer, t = performance.now();
            for (let d = 1; d <= v.nDays; d++) v.setDay(d);
            return performance.now() - t; })()""")
        browser.close()
    return ready, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25x30,1000x100",
                        help="comma-separated RESIDENTSxDAYS (default 25x30,1000x100)")
    parser.add_argument("--policy", default="random", help="policy mix (default random)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep the run folders under this folder")
    args = parser.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="civa-viewer-"))
    print(f"{'size':>10} {'events':>8} {'jsonl MB':>9} {'sim s':>7} {'build s':>8} "
          f"{'html MB':>8} {'ready ms':>9} {'all days ms':>12}")
    for size in args.sizes.split(","):
        n, days = (int(x) for x in size.lower().split("x"))
        run = root / f"run-{n}x{days}"
        cfg = Config(n_agents=n, max_days=days, obs_mode="numeric",
                     condition="without:benevolence", prevalence=0.5)
        t = time.perf_counter()
        run_community(cfg, args.policy, seed=args.seed, run_dir=run, progress=False,
                      plots=False, overwrite=True)
        sim = time.perf_counter() - t
        t = time.perf_counter()
        html = build_page(run)
        build = time.perf_counter() - t
        events = sum(1 for _ in open(run / "events.jsonl", encoding="utf-8"))
        times = browser_times(html)
        ready, sweep = (f"{times[0]:.0f}", f"{times[1]:.0f}") if times else ("-", "-")
        print(f"{size:>10} {events:>8} {(run / 'events.jsonl').stat().st_size / 1e6:>9.1f} "
              f"{sim:>7.1f} {build:>8.2f} {html.stat().st_size / 1e6:>8.2f} {ready:>9} "
              f"{sweep:>12}", flush=True)
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
