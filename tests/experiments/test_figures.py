"""Figures fit to publish (issue 16): every format written (PNG at 200 dpi, a PDF, an SVG) at
a paper column's or a page's width, by ``civa run`` and ``civa report`` and their
``--format``; one palette for the plots and the viewer; legends with every condition of a
partial sweep and outside the data. Also the plain-text by-policy table with a long ``ppo:``
label, and ``examples/mixed_population.py`` writing only under its ``--out``."""

from __future__ import annotations

import importlib.util
import json
import types
from pathlib import Path
from typing import Any

import pytest

from civa_env import style
from civa_env.cli import format_summary, main
from civa_env.experiments import plots
from civa_env.experiments.breakdown import group_table
from civa_env.world.config import Config
from civa_env.world.values import ValueCondition

matplotlib = pytest.importorskip("matplotlib")
PIL = pytest.importorskip("PIL.Image")

SMALL = ["--agents", "10", "--days", "6", "--no-progress"]
ROOT = Path(__file__).resolve().parents[2]


def png_dpi(path: Path) -> tuple[float, float]:
    with PIL.open(path) as im:
        return im.info["dpi"]


def png_size(path: Path) -> tuple[int, int]:
    with PIL.open(path) as im:
        return im.size


def check_file(path: Path) -> None:
    """A figure file is what its suffix says."""
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data.startswith(b"\x89PNG") and b"pHYs" in data[:200]
        assert [round(v) for v in png_dpi(path)] == [style.PNG_DPI, style.PNG_DPI]
    elif path.suffix == ".pdf":
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        assert b"/FontFile2" in data  # TrueType fonts embedded (pdf.fonttype 42)
    else:
        assert path.suffix == ".svg" and b"<svg" in data[:1000]


@pytest.fixture(scope="module")
def summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """metrics.json of a short real run (civa run, no plots)."""
    run = tmp_path_factory.mktemp("figures") / "run"
    assert main(["run", *SMALL, "--policy", "scripted=0.6,random=0.4", "--out", str(run),
                 "--no-plots"]) == 0
    return json.loads((run / "metrics.json").read_text())


# ---- files, formats, sizes ------------------------------------------------------------------
def test_run_figures_in_every_format_and_width(tmp_path: Path, summary: dict) -> None:
    written = plots.plot_run(tmp_path, summary, formats=["png", "pdf", "svg"])
    assert sorted(p.name for p in written) == sorted(
        f"{stem}.{fmt}" for stem in ("population", "wealth", "actions")
        for fmt in ("png", "pdf", "svg"))
    for path in written:
        check_file(path)
    # A paper column (3.4 in) for one series, a page (7 in) for the actions and their legend.
    assert png_size(tmp_path / "population.png")[0] == round(style.COLUMN_WIDTH * style.PNG_DPI)
    assert png_size(tmp_path / "wealth.png")[0] == round(style.COLUMN_WIDTH * style.PNG_DPI)
    assert png_size(tmp_path / "actions.png")[0] == round(style.PAGE_WIDTH * style.PNG_DPI)


def test_civa_run_format_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    default = tmp_path / "default"
    assert main(["run", *SMALL, "--out", str(default)]) == 0
    figures = sorted(p.name for p in default.iterdir() if p.suffix in (".png", ".pdf", ".svg"))
    assert figures == sorted(f"{s}.{f}" for s in ("actions", "population", "wealth")
                             for f in ("png", "pdf"))  # the default: png,pdf
    for name in figures:
        check_file(default / name)
    vector = tmp_path / "svg"
    assert main(["run", *SMALL, "--out", str(vector), "--format", "svg"]) == 0
    assert sorted(p.name for p in vector.glob("*.*g")) == [
        "actions.svg", "population.svg", "wealth.svg"]
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main(["run", *SMALL, "--out", str(bad), "--format", "png,jpeg"]) == 1
    err = capsys.readouterr().err
    assert "--format: figure formats: expected a comma-separated list of png, pdf, svg" in err
    assert "jpeg" in err
    assert not bad.exists()  # refused before anything ran


def test_civa_report_format_option(tmp_path: Path) -> None:
    """A partial grid (benevolence only without, power only with), one seed a cell."""
    sweep = tmp_path / "sweep"
    assert main(["sweep", "--conditions", "baseline,without:benevolence,with:power",
                 "--prevalence", "0.5,1", "--seeds", "1", "--workers", "1", *SMALL,
                 "--out", str(sweep)]) == 0
    out = tmp_path / "report"
    assert main(["report", str(sweep), "--out", str(out), "--no-pages",
                 "--format", "png,pdf,svg"]) == 0
    figures = {p.stem for p in out.glob("*.png")}
    assert {"nAUP_vs_prevalence", "free_riding_rate_vs_prevalence",
            "population_curves"} <= figures
    text = (out / "report.md").read_text()
    for stem in figures:
        for fmt in ("png", "pdf", "svg"):
            check_file(out / f"{stem}.{fmt}")
        assert png_size(out / f"{stem}.png")[0] == round(style.PAGE_WIDTH * style.PNG_DPI)
        assert (f"![{stem}]({stem}.png) ([PDF]({stem}.pdf), [SVG]({stem}.svg))") in text


def test_parse_formats() -> None:
    assert plots.parse_formats("PNG, pdf,png") == ("png", "pdf")
    for bad in ("", "gif", "png,,tiff"):
        with pytest.raises(ValueError, match="figure formats: expected"):
            plots.parse_formats(bad)
    with plots.output_formats(["svg"]):
        assert plots.current_formats() == ("svg",)
    assert plots.current_formats() == plots.DEFAULT_FORMATS


# ---- one palette, legends ---------------------------------------------------------------------
def _extent(artist: Any, fig: Any) -> Any:
    return artist.get_window_extent(fig.canvas.get_renderer())


def _clear_of_axes(fig: Any, legend: Any) -> None:
    """The legend covers no axes' plotting area nor its tick labels and axis labels."""
    fig.canvas.draw()
    box = _extent(legend, fig)
    for ax in fig.axes:
        if ax.axison:
            assert not box.overlaps(ax.get_tightbbox(fig.canvas.get_renderer())), ax


def test_run_figures_use_the_palette_and_keep_legends_off_the_data(summary: dict) -> None:
    from matplotlib.colors import to_hex

    actions = plots.actions_figure(summary)
    ax = actions.axes[0]
    colours = {c.get_label(): to_hex(c.patches[0].get_facecolor()) for c in ax.containers}
    kinds = {k for day in summary["actions"] for k in day}
    assert colours == {k.replace("_", " "): style.ACTION_COLOURS[k] for k in kinds}
    assert colours["attack"] == style.ACTION_COLOURS["attack"] == "#dc2626"  # the page's red
    assert len(actions.legends) == 1 and not ax.get_legend()
    _clear_of_axes(actions, actions.legends[0])
    assert ax.get_ylabel() == "actions (count per day)" and ax.get_xlabel() == "day"
    wealth = plots.wealth_figure(summary)
    assert [t.get_text() for t in wealth.legends[0].get_texts()] == ["mean wealth", "Gini"]
    _clear_of_axes(wealth, wealth.legends[0])  # off the right (Gini) axis too
    assert to_hex(wealth.axes[0].lines[0].get_color()) == style.SERIES_COLOURS["wealth_mean"]
    for fig in (actions, wealth):
        matplotlib.pyplot.close(fig)


def _stats(conditions: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Rows like report.summarize_rows gives, for ``metric`` nAUP."""
    out = []
    for condition, prevalences in conditions.items():
        for k, p in enumerate(prevalences):
            out.append({"condition": condition, "prevalence": p, "nAUP_mean": 0.8 + 0.02 * k,
                        "nAUP_lo": 0.7, "nAUP_hi": 0.9, "population": [10, 9, 8]})
    return out


def test_legend_of_a_partial_sweep_has_every_condition() -> None:
    """benevolence is swept only without, power only with: the first panel has no ``with``
    line, the legend still has with:power."""
    stats = _stats({"without:benevolence": [0.5, 1.0], "with:power": [0.5, 1.0],
                    "baseline": [0.0]})
    baseline = next(r for r in stats if r["condition"] == "baseline")
    fig = plots.metric_vs_prevalence_figure(stats, "nAUP", baseline)
    assert [ax.get_title() for ax in fig.axes] == ["benevolence", "power"]
    assert not any(line.get_label() == "with:power" for line in fig.axes[0].lines)
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == ["without:benevolence", "with:power", "baseline (band: 95% interval)"]
    _clear_of_axes(fig, legend)
    # Lines in their condition's palette colour (the viewer's node colours).
    from matplotlib.colors import to_hex

    drawn = {line.get_label(): to_hex(line.get_color()) for ax in fig.axes for line in ax.lines
             if not line.get_label().startswith("_")}
    assert drawn["with:power"] == style.CONDITION_COLOURS["with:power"]
    assert drawn["without:benevolence"] == style.CONDITION_COLOURS["without:benevolence"]
    assert fig.axes[0].collections, "the 95% interval is a shaded band"
    matplotlib.pyplot.close(fig)
    # Every condition of a full grid, in ten panels and one legend.
    grid = _stats({str(ValueCondition.from_code(c)): [0.5, 1.0] for c in range(1, 21)})
    fig = plots.metric_vs_prevalence_figure(grid, "nAUP")
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {
        str(ValueCondition.from_code(c)) for c in range(1, 21)}
    _clear_of_axes(fig, fig.legends[0])
    matplotlib.pyplot.close(fig)


def test_thresholds_legend_collects_every_panel() -> None:
    panel = {"condition": "with:power", "response": "nAUP", "x": [0, 0, 5, 5, 10, 10],
             "y": [1, 0.9, 0.8, 0.7, 0.3, 0.2], "levels": [0, 5, 10],
             "mean": [0.95, 0.75, 0.25], "sd": [0.05, 0.05, 0.05], "quadratic": None,
             "step": None, "p_holm": None}
    tested = {**panel, "response": "collapsed", "quadratic": [0.0, 0.05, 0.0],
              "step": (5, 10, 6, 10, 0.1, 0.9), "p_holm": 0.01}
    fig = plots.thresholds_figure([panel, tested])
    labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"step", "quadratic (null)", "threshold interval (95%)"} <= labels
    _clear_of_axes(fig, fig.legends[0])
    matplotlib.pyplot.close(fig)


def test_palette_is_written_once() -> None:
    """The viewer's page gets ``style.palette()``; conditions are keyed as the page's labels
    (``with:power``) and ``without`` is the pale form of the value's hue."""
    pal = style.palette()
    assert json.loads(json.dumps(pal)) == pal
    assert set(pal["conditions"]) == {str(ValueCondition.from_code(c)) for c in range(21)}
    assert pal["conditions"]["without:power"] == style.lighten(
        style.VALUE_HUES["power"], style.WITHOUT_LIGHTEN)
    assert pal["edges"]["attack"] == pal["actions"]["attack"]
    assert style.policy_colour("ppo:runs/a/model.zip") == style.POLICY_COLOURS["ppo"]
    page_js = (ROOT / "civa_env" / "viewer" / "page.js").read_text()
    page_css = (ROOT / "civa_env" / "viewer" / "page.css").read_text()
    # No second copy in the page's own files (the page's ink and accent colours aside).
    ink = {"#111827", "#2563eb", "#7c3aed"}
    for colour in {*style.ACTION_COLOURS.values(), *style.VALUE_HUES.values(),
                   *style.BEHAVIOUR_COLOURS.values()} - ink:
        assert colour not in page_js and colour not in page_css, colour
    assert "VALUE_HUES" not in page_js and "ACTION_COLOURS" not in page_js


# ---- the by-policy table ------------------------------------------------------------------------
def test_group_table_aligns_long_policy_labels(summary: dict) -> None:
    long_label = "ppo:" + "/".join(["runs"] + ["a-long-experiment-folder"] * 3) + "/model.zip"
    groups = {long_label if k == "random" else k: v for k, v in summary["by_policy"].items()}
    lines = group_table(groups)
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1
    assert lines[1].split()[0] in (long_label, "scripted")
    assert long_label in "".join(lines)  # shown whole
    # Every number ends under the end of its heading.
    head = lines[0]
    ends = [head.index(h) + len(h) for h in ("residents", "alive", "survival", "wealth",
                                              "gifts/d", "attacks/d")]
    for line in lines[1:]:
        for end in ends:
            assert line[end - 1] != " " and (end == len(line) or line[end] == " "), (line, end)
    # civa run prints it so.
    result = types.SimpleNamespace(summary={**summary, "by_policy": groups}, seed=0,
                                   run_dir=None)
    text = format_summary(result, Config(n_agents=10, max_days=6))
    block = text.split("by policy:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert block == lines


# ---- examples/mixed_population.py --out ------------------------------------------------------
def test_mixed_population_example_writes_under_out(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("mixed_population",
                                                  ROOT / "examples" / "mixed_population.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    calls: dict[str, Any] = {}

    def train(argv: list[str], check: bool) -> None:  # stands for baselines/train_ppo.py
        out_dir = Path(argv[argv.index("--out-dir") + 1])
        name = argv[argv.index("--exp-name") + 1]
        model = out_dir / f"{name}__baseline__survival__0" / "model.zip"
        model.parent.mkdir(parents=True)
        model.write_bytes(b"zip")
        calls["train"] = out_dir

    def tiny(path: Path) -> Path:
        Path(path).mkdir(parents=True)
        calls["tiny"] = Path(path)
        return Path(path)

    def run_community(cfg: Config, mix: dict, *, run_dir: Path, **kwargs: Any) -> Any:
        calls["mix"], calls["run"] = mix, Path(run_dir)
        Path(run_dir).mkdir(parents=True)
        by_policy = {spec: {"residents": 4, "alive_end": 4, "survival": 1.0,
                            "mean_wealth_end": 5.0, "founders": 4, "born": 0,
                            "actions_per_resident_day": {"gift": 0.1, "attack": 0.0}}
                     for spec in mix}
        return types.SimpleNamespace(summary={"nAUP": 1.0, "SC": 0.0, "ED": 1.0, "IC": 0.0,
                                              "CC": 1.0, "by_policy": by_policy})

    import civa_env.policies.llm.models.tiny as tiny_module

    monkeypatch.setattr(example.subprocess, "run", train)
    monkeypatch.setattr(tiny_module, "build_tiny_model", tiny)
    monkeypatch.setattr(example, "run_community", run_community)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "out"
    example.main(["--out", str(out)])
    paths = example.output_paths(out)
    assert calls["train"] == paths["ppo"] and calls["tiny"] == paths["tiny_llm"]
    assert calls["run"] == paths["run"]
    checkpoint = next(s for s in calls["mix"] if s.startswith("ppo:"))[4:]
    assert Path(checkpoint) == paths["checkpoint"] and Path(checkpoint).is_file()
    assert all(p.is_relative_to(out) for p in paths.values())
    assert list(cwd.iterdir()) == []  # nothing in the current folder (no runs/examples)
