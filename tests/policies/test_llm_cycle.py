"""The LLM residents' daily cycle (issue 10): memory written from the day's outcome, full
mode as one conversation, reasoning, value personas in the system prompt, shuffled option
lists, the questionnaire (manipulation check) and its report table, diagnostics.

Most tests drive the policy with ``schema_model``: a fake that gives valid answers (seeded
random ones), so the community does things and the prompts can be read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import civa_env  # noqa: E402
from civa_env.experiments.report import build_report, orientation_changes  # noqa: E402
from civa_env.experiments.runner import run_community  # noqa: E402
from civa_env.experiments.sweep import Sweep, run_id  # noqa: E402
from civa_env.policies import make_policy  # noqa: E402
from civa_env.policies.batch import Batch  # noqa: E402
from civa_env.policies.llm import personas  # noqa: E402
from civa_env.policies.llm import questionnaire as quest  # noqa: E402
from civa_env.policies.llm.models.fake import FakeModel, schema_model  # noqa: E402
from civa_env.policies.llm.models.tiny import build_tiny_model  # noqa: E402

SMALL = dict(reflection_chars=16, memory_chars=24, message_chars=16, plan_chars=16)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def llm(model, **options):
    return make_policy("llm", model=model, **{"cache": "off", **SMALL, **options})


def play(env, policy, days: int, after_step=None) -> None:
    """One ``act`` a day for every living resident; ``after_step(day, env)`` after each."""
    obs, infos = env.reset(seed=env.cfg.seed)
    policy.reset(env.cfg, seed=0)
    for day in range(1, days + 1):
        if not env.agents:
            break
        batch = Batch.from_observations({a: obs[a] for a in env.agents},
                                        {a: infos[a] for a in env.agents}, day=day)
        actions = policy.act(batch)
        obs, _, _, _, infos = env.step(actions)
        if after_step is not None:
            after_step(day, env)


def transcript(folder: Path) -> list[dict]:
    return [json.loads(line) for line in open(folder / "transcript.jsonl")]


def test_full_mode_memory_prompt_of_day_d_holds_that_days_outcome(tmp_path):
    env = civa_env.parallel_env(n_agents=6, seed=2, max_days=4, condition="with:power",
                                prevalence=1.0)
    policy = llm(schema_model(seed=1), mode="full", questionnaire=False)
    policy.open_run(tmp_path)
    wealth, harmed = {}, {}

    def after(day, env):
        st = env.world.state
        for i in range(env.cfg.n_agents):
            wealth[(day, f"resident_{i}")] = float(st.wealth[i])
        for e in env.log.events(day):
            if e.kind.label in ("attack", "gift") and e.target:
                harmed.setdefault((day, e.target), set()).add(e.actor)

    play(env, policy, 4, after)
    memory = [r for r in transcript(tmp_path) if r["phase"] == "memory"]
    assert memory and {r["day"] for r in memory} == {1, 2, 3}
    for r in memory:
        assert r["asked_on_day"] == r["day"] + 1
        # Its wealth after the day (the next briefing's "Your wealth") ...
        assert f"Your wealth: {wealth[(r['day'], r['agent'])]:.1f}" in r["prompt"]
        # ... what it did that day, and who did something to it.
        assert f"Yesterday (day {r['day']}) you planned" in r["prompt"]
        for other in harmed.get((r["day"], r["agent"]), ()):
            assert other in r["prompt"], (r["agent"], other)
    assert any(harmed.get((r["day"], r["agent"])) for r in memory)  # the check did bite


def test_full_mode_is_one_conversation_a_day():
    fake = schema_model(seed=0)
    env = civa_env.parallel_env(n_agents=3, seed=0, max_days=2)
    play(env, llm(fake, mode="full", questionnaire=False), 2)
    day2 = fake.calls[3:]  # memory, perception, communication, action of day 2
    assert len(day2) == 4
    for earlier, later in zip(day2, day2[1:], strict=False):
        for a, b in zip(earlier, later, strict=True):
            assert b.startswith(a)  # each call extends the conversation of the one before
    assert all(row.count("Your wealth:") == 1 for row in day2[-1])  # the briefing once


def test_combined_mode_one_call_carries_yesterday():
    fake = schema_model(seed=3)
    env = civa_env.parallel_env(n_agents=4, seed=1, max_days=3)
    policy = llm(fake, questionnaire=False)
    play(env, policy, 3)
    assert len(fake.calls) == 3  # one batched call a day
    assert all("Yesterday (day" not in t for t in fake.calls[0])
    assert all("Yesterday (day 2) you planned" in t for t in fake.calls[2])
    # The memory written on day 2 is in the day-3 prompt.
    assert all("Your memory: nothing yet" not in t for t in fake.calls[2])


def test_reasoning_comes_first_then_the_constrained_answer(tmp_path):
    fake = schema_model(seed=0, free_text="Let me weigh it up.")
    env = civa_env.parallel_env(n_agents=3, seed=0, max_days=1)
    policy = llm(fake, reasoning=True, questionnaire=False)
    policy.open_run(tmp_path)
    play(env, policy, 1)
    assert len(fake.calls) == 2
    assert all("think it through" in t for t in fake.calls[0])
    assert all("Let me weigh it up." in t for t in fake.calls[1])
    phases = [r["phase"] for r in transcript(tmp_path)]
    assert phases == ["combined.reasoning"] * 3 + ["combined"] * 3
    assert policy.stats["valid"] == policy.stats["decisions"] == 3


def test_value_persona_in_the_system_prompt():
    seen: list[str] = []

    def respond(text, grammar):
        seen.append(text)
        return schema_model().respond(text, grammar)

    env = civa_env.parallel_env(n_agents=4, seed=0, max_days=1, condition="with:power",
                                prevalence=0.5)
    play(env, llm(FakeModel(respond), questionnaire=False), 1)
    holders = {f"resident_{i}" for i in env.world.state.condition.nonzero()[0].tolist()}
    assert len(holders) == 2
    for text in seen:
        system = text.split("<user>")[0]
        me = re.search(r"You are (resident_\d+)\.", text).group(1)
        expected = personas.persona("with:power" if me in holders else "baseline")
        assert expected in system
        assert "is very important to you" not in text.split("<user>")[1]  # not in the briefing


def test_v1_values_and_v1_briefing():
    env = civa_env.parallel_env(n_agents=2, seed=0, max_days=1, briefing="v1",
                                condition="with:power", prevalence=1.0)
    with pytest.raises(ValueError, match="briefing v1 carries the v1 value prompts"):
        llm(schema_model()).reset(env.cfg)
    fake = schema_model()
    play(env, llm(fake, values="v1", questionnaire=False), 1)
    system = fake.calls[0][0].split("<user>")[0]
    assert "very important to you" not in system  # v1's text sits in the v1 briefing
    with pytest.raises(ValueError, match="values must be one of v1, v2"):
        llm(schema_model(), values="v3")


def test_option_lists_follow_the_briefings_shuffled_order():
    fake = schema_model()
    env = civa_env.parallel_env(n_agents=12, seed=0, max_days=2)
    play(env, llm(fake, questionnaire=False), 2)
    lists = []
    for day in fake.calls:
        for text in day:
            names = re.search(r"Residents you may name: (.*)\.", text).group(1).split(", ")
            seen = re.search(r"Residents you see \(in random order\): (.*?)\.", text).group(1)
            assert names == re.findall(r"resident_\d+", seen)  # one order in the prompt
            factories = re.search(r"Factories you may name: (.*?)\. Resid", text).group(1)
            assert factories.split(", ") == re.findall(r"- factory (\d+):", text)
            lists.append(names)
    assert any(names != sorted(names, key=lambda n: int(n.split("_")[1])) for names in lists)
    again = schema_model()
    play(civa_env.parallel_env(n_agents=12, seed=0, max_days=2),
         llm(again, questionnaire=False), 2)
    assert again.calls == fake.calls  # seeded: the same prompts


def test_questionnaire_at_day_0_every_k_and_last_day(tmp_path):
    env = civa_env.parallel_env(n_agents=3, seed=0, max_days=4, condition="with:power",
                                prevalence=1.0)
    policy = llm(schema_model(), questionnaire_every=2)  # first options: work, nobody dies
    policy.open_run(tmp_path)
    play(env, policy, 4)
    rows = [json.loads(line) for line in open(tmp_path / "questionnaire.jsonl")]
    assert sorted((r["agent"], r["day"]) for r in rows) == sorted(
        (f"resident_{i}", d) for i in range(3) for d in (0, 2, 4))
    assert [r["first"] for r in rows if r["day"] == 0] == [True] * 3
    assert policy.stats["by_phase"]["questionnaire"]["valid"] == 9
    for r in rows:
        assert r["condition"] == "with:power" and r["outcome"] == "valid"
        assert set(r["answers"]) == {i.id for i in quest.items()}
        assert r["scores"] == quest.score(r["answers"])
    # Day 0 is asked before the first briefing; later ones inside the day's conversation.
    asked = [r for r in transcript(tmp_path) if r["phase"] == "questionnaire"]
    assert len(asked) == len(rows)


def test_report_shows_the_value_orientation_change(tmp_path):
    """A tiny-model sweep (baseline and with:power), then ``civa report``'s table."""
    tiny = build_tiny_model(tmp_path / "tiny")
    sweep = tmp_path / "sweep"
    base = civa_env.Config(n_agents=2, max_days=1)
    Sweep(sweep, ["baseline", "with:power"], [1.0], 1, base, policy="llm",
          policy_kwargs={"llm": {"model": str(tiny), "cache": "off", **SMALL}}).run(
              progress=False)
    cells = [("baseline", 0.0), ("with:power", 1.0)]
    for cond, p in cells:
        rows = [json.loads(line) for line in
                open(sweep / "runs" / run_id(cond, p, 0) / "questionnaire.jsonl")]
        assert {r["day"] for r in rows} == {0, 1}
    found = orientation_changes(sweep, [{"run_id": run_id(c, p, 0), "condition": c,
                                         "prevalence": p} for c, p in cells])
    assert found["reference"] == "baseline runs"
    [cell] = found["cells"]
    assert cell["condition"] == "with:power" and set(cell["end"]) == {
        i.value for i in quest.items()}
    assert cell["n_start"] == 2 and cell["n_end"] == 2
    assert all(-1 <= x <= 1 for x in cell["end"].values())
    assert cell["change"]["power"] == pytest.approx(cell["end"]["power"]
                                                    - cell["start"]["power"])
    text = build_report(sweep, pages=False).read_text()
    assert "## Value-orientation change (manipulation check)" in text
    assert re.search(r"\| with:power \| 1 \| 2, 2 \|( [+-]\d\.\d\d \|){3}", text)


def test_diagnostics_reach_metrics(tmp_path):
    policy = llm(schema_model(seed=4), questionnaire=False)
    cfg = civa_env.Config(n_agents=5, max_days=3, seed=0)
    run_community(cfg, "llm", seed=0, run_dir=tmp_path / "run", policies={"llm": policy},
                  progress=False, plots=False)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    diag = metrics["llm"]["diagnostics"]["llm"]
    assert diag["decisions"] == policy.stats["decisions"] > 0
    assert 0 <= diag["first_option_rate"] <= 1 and diag["reference"]["chance_rate"] > 0


def test_mixed_community_llm_residents_hear_who_attacked_or_gave(tmp_path):
    """Tiny-model LLM residents among scripted ones under with:power: every attack on or
    gift to an LLM resident is in that resident's next prompt, with the other's name."""
    tiny = build_tiny_model(tmp_path / "tiny")
    policy = llm(str(tiny), questionnaire=False, temperature=1.0, seed=5)  # sampled: varied
    cfg = civa_env.Config(n_agents=12, max_days=6, seed=1, condition="with:power",
                          prevalence=1.0)
    run = tmp_path / "run"
    run_community(cfg, "llm=0.4,scripted", seed=1, run_dir=run, policies={"llm": policy},
                  progress=False, plots=False)
    prompts = {(r["day"], r["agent"]): r["prompt"] for r in transcript(run)
               if r["phase"] == "combined" and r["attempt"] == 1}
    llm_agents = {a for _, a in prompts}
    checked = 0
    for line in open(run / "events.jsonl"):
        e = json.loads(line)
        if e["kind"] in ("attack", "gift") and e.get("target") in llm_agents:
            nxt = prompts.get((e["day"] + 1, e["target"]))
            if nxt is None:  # the last day, or it starved
                continue
            what = "Attacked you:" if e["kind"] == "attack" else "Gave to you:"
            lines = [ln for ln in nxt.splitlines() if e["actor"] in ln and what in ln]
            assert lines, (e, nxt)
            checked += 1
    assert checked >= 2  # the scripted power-seekers did attack or give to LLM residents
    # The diagnostics of the tiny model's run, beside a random valid resident's.
    diag = json.loads((run / "metrics.json").read_text())["llm"]["diagnostics"]["llm"]
    assert diag["decisions"] == policy.stats["decisions"] > 0
    ref = diag["reference"]
    assert ref["decisions"] == diag["decisions"] and ref["action_entropy"]["pair"] > 0


def test_one_llm_policy_needs_one_horizon_across_communities():
    from civa_env.experiments.runner import run_communities

    cfgs = [civa_env.Config(n_agents=2, max_days=d) for d in (2, 3)]
    with pytest.raises(ValueError, match="needs one max_days; got \\[2, 3\\]"):
        run_communities(cfgs, [0, 1], "llm", policies={"llm": llm(schema_model())},
                        progress=False, plots=False)


def test_briefing_v1_day_0_questionnaire_carries_the_value_text(tmp_path):
    env = civa_env.parallel_env(n_agents=2, seed=0, max_days=1, briefing="v1",
                                condition="with:power", prevalence=0.5)
    fake = schema_model()
    play(env, llm(fake, values="v1"), 1)
    day0 = fake.calls[0]
    assert sum(personas.persona("with:power", "v1") in t for t in day0) == 1


def test_every_phase_prompt_is_documented():
    from civa_env.policies.llm.prompts import PROMPT_DIR

    doc = (Path(__file__).parents[2] / "docs" / "prompts.md").read_text()
    for path in sorted((PROMPT_DIR / "v2").glob("*.txt")):
        assert path.read_text().rstrip("\n") in doc, path.name


def test_report_of_a_table_without_run_folders(tmp_path):
    """The report reads results.csv alone when the run folders are gone (the questionnaire
    section looks into run folders only where they exist)."""
    import shutil

    sweep = tmp_path / "sweep"
    Sweep(sweep, ["with:power"], [1.0], 1, civa_env.Config(n_agents=3, max_days=2)).run(
        progress=False)
    shutil.rmtree(sweep / "runs")
    text = build_report(sweep, pages=False).read_text()
    assert "Value-orientation change" not in text and "Community metrics" in text


def test_an_option_the_backend_does_not_take_is_named():
    from civa_env.policies.llm.models import load_model

    with pytest.raises(ValueError, match="threads do not apply to the openai backend"):
        load_model("m", "openai", threads=2)
