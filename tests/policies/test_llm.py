"""LLM residents: a tiny random-weight Llama built in-test (no download), run on the CPU.

The model has random weights, so its free-running output is noise: every valid action with
constrained decoding is the constraint's doing, and the unconstrained run is the negative
control that the parser, retry and fallback must catch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("llguidance")

import civa_env  # noqa: E402
from civa_env.policies import Batch, make_policy  # noqa: E402
from civa_env.policies.llm import schema as sch  # noqa: E402
from civa_env.policies.llm.models.cache import CachedModel  # noqa: E402
from civa_env.policies.llm.models.fake import FakeModel  # noqa: E402
from civa_env.policies.llm.models.tiny import build_tiny_model  # noqa: E402

SMALL = dict(reflection_chars=16, memory_chars=16, message_chars=16, plan_chars=16)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, width-64 Llama with random weights and a 1024-token BPE tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def llm(model, **options):
    options = {"cache": "off", "questionnaire": False, **SMALL, **options}
    return make_policy("llm", model=str(model) if isinstance(model, Path) else model, **options)


def spy_generate(policy) -> list[int]:
    """Record the batch size of every real ``model.generate`` call of the HF backend."""
    calls: list[int] = []
    inner = policy.backend.model.generate

    def generate(*args, **kwargs):
        calls.append(int(kwargs["input_ids"].shape[0]))
        return inner(*args, **kwargs)

    policy.backend.model.generate = generate
    return calls


def play(envs, policy, days: int, results: list | None = None) -> list[dict]:
    """Step ``envs`` with one ``act`` a day for all their residents; returns every info.

    Each day's ``batch.results`` is appended to ``results`` when given.
    """
    seen = []
    states = [e.reset(seed=k) for k, e in enumerate(envs)]
    policy.reset(envs[0].cfg, seed=0)
    single = len(envs) == 1
    for day in range(1, days + 1):
        obs, infos = {}, {}
        for k, (env, (o, i)) in enumerate(zip(envs, states, strict=True)):
            for a in env.agents:
                key = a if single else (k, a)
                obs[key], infos[key] = o[a], i[a]
        if not obs:
            break
        batch = Batch.from_observations(obs, infos, day=day)
        actions = policy.act(batch)
        assert set(actions) == set(obs)
        if results is not None:
            results.append(batch.results)
        for k, env in enumerate(envs):
            if not env.agents:
                continue
            mine = {a: actions[a if single else (k, a)] for a in env.agents}
            o, _, _, _, i = env.step(mine)
            states[k] = (o, i)
            seen += list(i.values())
    return seen


# ---- end to end with the tiny model -----------------------------------------------------------
def test_constrained_community_all_actions_valid_one_call_a_day(tiny, tmp_path):
    env = civa_env.parallel_env(n_agents=6, seed=0, max_days=4, condition="with:benevolence",
                                prevalence=0.5)
    policy = llm(tiny)
    calls = spy_generate(policy)
    policy.open_run(tmp_path)
    results = []
    infos = play([env], policy, 4, results)
    days = policy.stats["days"]
    assert days == 4
    # Each resident's decision is reported in batch.results.
    assert set(results[0]) == {f"resident_{i}" for i in range(6)}
    assert {r["decision"] for day in results for r in day.values()} == {"valid"}
    # No env flag of any kind: every action was carried out as written.
    assert [i["invalid"] for i in infos if i["invalid"]] == []
    assert policy.stats["decisions"] > 0
    assert policy.stats["valid"] == policy.stats["decisions"]
    assert policy.stats["retried"] == policy.stats["fallback"] == 0
    # Batching is real: one generate call per day for everyone.
    assert calls[0] == 6 and len(calls) == days
    assert policy.counter.rows == calls
    records = [json.loads(line) for line in open(tmp_path / "transcript.jsonl")]
    assert len(records) == policy.stats["decisions"]
    assert {r["phase"] for r in records} == {"combined"}
    assert {r["day"] for r in records} == {1, 2, 3, 4}  # the batch's day
    assert {r["outcome"] for r in records} == {"valid"}
    for r in records:
        for key in ("day", "agent", "prompt", "answer", "prompt_tokens", "completion_tokens",
                    "latency_s"):
            assert key in r
        assert json.loads(r["answer"])["primary"]["kind"] in (
            "work", "explore", "upgrade_self", "upgrade_factory", "idle")
    stats = json.loads((tmp_path / "llm_stats.json").read_text())
    assert stats["valid"] == stats["decisions"] and stats["days"] == 4
    assert policy.memory  # the memory key was kept


def test_constrained_residents_name_their_slots_factories_in_a_large_world(tiny, tmp_path):
    """Where the factory slots rank the known factories (12 factories, 2 slots, residents
    knowing 3), the prompts list and the grammar allows the slots' factories only: every
    action valid, every worked factory one of the worker's legal factories that day."""
    env = civa_env.parallel_env(n_agents=5, seed=0, max_days=3, n_factories=12,
                                factory_slots=2, known_at_start=3)
    assert env.cfg.ranks_factories
    policy = llm(tiny)
    policy.open_run(tmp_path)
    results = []
    infos = play([env], policy, 3, results)
    assert {r["decision"] for day in results for r in day.values()} == {"valid"}
    assert [i["invalid"] for i in infos if i["invalid"]] == []
    for line in open(tmp_path / "transcript.jsonl"):
        record = json.loads(line)
        primary = json.loads(record["answer"])["primary"]
        if primary["kind"] in ("work", "upgrade_factory"):
            listed = [int(m) for m in re.findall(r"- factory (\d+):", record["prompt"])]
            assert len(listed) <= 2 and int(primary["factory"]) in listed
    # A resident that works at the first factory its prompt lists works there, unflagged.
    chosen: list[tuple[int, int]] = []

    def respond(text, grammar):
        me = int(re.search(r"You are resident_(\d+)", text).group(1))
        listed = re.findall(r"- factory (\d+):", text)
        if not listed:
            return ('{"reflection": "ok", "messages": [], "primary": {"kind": "explore"}, '
                    '"secondary": {"kind": "none"}, "memory": "m"}')
        chosen.append((me, int(listed[0])))
        return ('{"reflection": "ok", "messages": [], "primary": {"kind": "work", "factory": '
                + listed[0] + '}, "secondary": {"kind": "none"}, "memory": "m"}')

    env = civa_env.parallel_env(n_agents=5, seed=0, max_days=2, n_factories=12,
                                factory_slots=2, known_at_start=3)
    from civa_env.world.kinds import K

    fake = llm(FakeModel(respond))
    infos = play([env], fake, 2)
    assert chosen and [i["invalid"] for i in infos if i["invalid"]] == []
    assert fake.stats["valid"] == fake.stats["decisions"]
    cols, _ = env.log.columns()
    worked = {(int(a), int(f)) for a, f, k in zip(cols["actor"], cols["factory"], cols["kind"],
                                                  strict=True) if k == K.WORK}
    assert worked == set(chosen)


def test_actions_use_secondaries_and_messages(tiny):
    """The constrained noise explores the whole action space, not only idling."""
    env = civa_env.parallel_env(n_agents=8, seed=3, max_days=3)
    policy = llm(tiny, temperature=1.0, seed=5)
    seen = []
    original = policy.act

    def act(batch):
        out = original(batch)
        seen.extend(out.values())
        return out

    policy.act = act
    infos = play([env], policy, 3)
    assert [i["invalid"] for i in infos if i["invalid"]] == []
    assert {a["primary"] for a in seen} - {"idle"}
    assert {a["secondary"] for a in seen} - {"none"}
    assert any(a["messages"] for a in seen)


def test_full_cycle_four_batched_calls_a_day(tiny, tmp_path):
    env = civa_env.parallel_env(n_agents=5, seed=1, max_days=2)
    policy = llm(tiny, mode="full")
    calls = spy_generate(policy)
    policy.open_run(tmp_path)
    infos = play([env], policy, 2)
    assert [i["invalid"] for i in infos if i["invalid"]] == []
    # Day 1: perception, communication, action; day 2 starts with the memory of day 1.
    assert len(calls) == 7
    assert policy.stats["fallback"] == 0 and policy.stats["valid"] == policy.stats["decisions"]
    records = [json.loads(line) for line in open(tmp_path / "transcript.jsonl")]
    phases = [r["phase"] for r in records]
    assert phases == (["perception"] * 5 + ["communication"] * 5 + ["action"] * 5
                      + ["memory"] * 5 + ["perception"] * 5 + ["communication"] * 5
                      + ["action"] * 5)
    memory = [r for r in records if r["phase"] == "memory"]
    assert {r["day"] for r in memory} == {1} and {r["asked_on_day"] for r in memory} == {2}


def test_unconstrained_negative_control_falls_back_and_counts(tiny, tmp_path):
    env = civa_env.parallel_env(n_agents=6, seed=0, max_days=2)
    policy = llm(tiny, constrained=False, max_new_tokens=24)
    calls = spy_generate(policy)
    policy.open_run(tmp_path)
    results = []
    infos = play([env], policy, 2, results)
    stats = policy.stats
    assert stats["fallback"] >= 0.5 * stats["decisions"] > 0
    assert stats["valid"] + stats["retried"] + stats["fallback"] == stats["decisions"]
    # One retry call per day, only for the failed rows, then the safe default.
    assert len(calls) == 4
    # The fallback (idle) is itself a valid action: the env flags nothing.
    assert [i["invalid"] for i in infos if i["invalid"]] == []
    flagged = [v for v in results[-1].values() if v["outcome"] == "fallback"]
    assert flagged and all(f["errors"] for f in flagged)
    records = [json.loads(line) for line in open(tmp_path / "transcript.jsonl")]
    assert {r["attempt"] for r in records} == {1, 2}
    assert any(r["outcome"] == "fallback" and "error" in r for r in records)
    assert json.loads((tmp_path / "llm_stats.json").read_text())["fallback"] == stats["fallback"]


def test_one_call_for_all_residents_of_two_envs(tiny):
    envs = [civa_env.parallel_env(n_agents=4, seed=s, max_days=2) for s in (0, 1)]
    policy = llm(tiny)
    calls = spy_generate(policy)
    infos = play(envs, policy, 2)
    assert calls[0] == 8 and len(calls) == 2
    assert [i["invalid"] for i in infos if i["invalid"]] == []
    assert policy.stats["valid"] == policy.stats["decisions"] == sum(calls)


def test_left_padding_row_alone_equals_row_in_batch(tiny):
    policy = llm(tiny)
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0,
                                                     "maximum": 999}},
              "required": ["n"], "additionalProperties": False}
    prompts = ["a short one", "a much longer prompt " * 8, "mid length prompt here"]
    batch = policy.backend.generate(prompts, max_new_tokens=12, grammars=[schema] * 3)
    alone = policy.backend.generate(prompts[1:2], max_new_tokens=12, grammars=[schema])
    assert batch[1].text == alone[0].text
    assert all(json.loads(g.text)["n"] <= 999 for g in batch)


# ---- cache and transcript ----------------------------------------------------------------------
def test_cache_makes_greedy_rerun_free(tiny, tmp_path):
    cache = tmp_path / "cache.sqlite"

    def run():
        env = civa_env.parallel_env(n_agents=5, seed=0, max_days=3)
        policy = llm(tiny, cache=str(cache))
        calls = spy_generate(policy)
        actions = []
        original = policy.act
        policy.act = lambda batch: actions.append(original(batch)) or actions[-1]
        play([env], policy, 3)
        return policy, calls, actions

    first, calls1, actions1 = run()
    assert len(calls1) == 3 and first.stats["cache_hits"] == 0
    second, calls2, actions2 = run()
    assert calls2 == [] and second.counter.calls == 0
    assert second.stats["cache_hits"] == second.stats["decisions"] > 0
    assert actions1 == actions2


def test_cached_model_only_sends_misses():
    import tempfile

    fake = FakeModel(lambda text, g: text[::-1])

    with tempfile.TemporaryDirectory() as d:
        cached = CachedModel(fake, Path(d) / "c.sqlite")
        cached.generate(["ab", "cd"], max_new_tokens=4)
        out = cached.generate(["cd", "ef"], max_new_tokens=4)
        assert [g.text for g in out] == ["dc", "fe"] and [g.cached for g in out] == [True, False]
        assert fake.calls[-1] == ["ef"]  # only the miss went to the model
        sampled = cached.generate(["ab"], max_new_tokens=4, temperature=0.7)
        assert not sampled[0].cached
        cached.close()


def test_transcript_and_events_readable_after_crash(tiny, tmp_path):
    from civa_env.experiments.runner import run_community
    from civa_env.world.events import EventLog

    policy = llm(tiny)
    real = policy.model.generate
    count = {"n": 0}

    def generate(*args, **kwargs):
        count["n"] += 1
        if count["n"] == 3:
            raise RuntimeError("simulated crash (GPU lost)")
        return real(*args, **kwargs)

    policy.model.generate = generate
    cfg = civa_env.Config.from_kwargs(n_agents=5, max_days=5, seed=0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_community(cfg, "llm", seed=0, run_dir=tmp_path / "run",
                      policies={"llm": policy}, progress=False, plots=False)
    run = tmp_path / "run"
    records = [json.loads(line) for line in open(run / "transcript.jsonl")]
    assert {r["day"] for r in records} == {1, 2}
    assert all(r["outcome"] == "valid" for r in records)
    log = EventLog.read_jsonl(run / "events.jsonl")
    assert log.n_days == 2
    assert json.loads((run / "llm_stats.json").read_text())["days"] == 2


def test_fallbacks_counted_in_metrics(tmp_path):
    """Issue 4: a safe default, flagged in infos and counted in the metrics (metrics.json,
    by policy and by condition, and per resident in residents.json)."""
    from civa_env.experiments.runner import run_community

    policy = llm(FakeModel(lambda text, grammar: "no json here"))
    cfg = civa_env.Config.from_kwargs(n_agents=6, max_days=3, seed=0,
                                      condition="with:power", prevalence=0.5)
    run = tmp_path / "run"
    run_community(cfg, "llm=0.5,scripted", seed=0, run_dir=run, policies={"llm": policy},
                  progress=False, plots=False)
    m = json.loads((run / "metrics.json").read_text())
    stats = json.loads((run / "llm_stats.json").read_text())
    assert stats["fallback"] == stats["decisions"] > 0
    assert m["llm"]["fallback"] == m["llm"]["decisions"] == stats["decisions"]
    assert m["llm"]["valid"] == m["llm"]["retried"] == 0 and m["llm"]["fallback_rate"] == 1.0
    assert m["by_policy"]["llm"]["llm"]["fallback"] == stats["fallback"]
    assert m["by_policy"]["llm"]["llm"]["fallback_residents"] == 3
    assert "llm" not in m["by_policy"]["scripted"]
    assert sum(g.get("llm", {}).get("fallback", 0) for g in m["by_condition"].values()) == (
        stats["fallback"])
    residents = json.loads((run / "residents.json").read_text())
    flagged = {a: r["llm"] for a, r in residents.items() if "llm" in r}
    assert set(flagged) == {a for a, r in residents.items() if r["policy"] == "llm"}
    assert sum(c["fallback"] for c in flagged.values()) == stats["fallback"]


def test_valid_and_retried_decisions_counted_in_metrics(tmp_path):
    from civa_env.experiments.runner import run_community

    good = ('{"reflection": "ok", "messages": [], "primary": {"kind": "idle"}, '
            '"secondary": {"kind": "none"}, "memory": "m"}')

    def respond(text, grammar):  # resident_1 needs its retry; the others answer well
        me = re.search(r"You are (resident_\d+)\.", text)
        if me and me.group(1) == "resident_1" and "could not be used" not in text:
            return "{}"
        return good

    policy = llm(FakeModel(respond))
    cfg = civa_env.Config.from_kwargs(n_agents=3, max_days=2, seed=0)
    result = run_community(cfg, "llm", seed=0, run_dir=None, policies={"llm": policy},
                           progress=False, plots=False)
    counts = result.summary["llm"]
    assert counts["decisions"] == policy.stats["decisions"] > 0
    assert counts["retried"] >= 1 and counts["valid"] >= 1
    for outcome in ("valid", "retried", "fallback"):
        assert counts[outcome] == policy.stats[outcome]


def test_rerun_multi_env_with_overwrite_starts_a_fresh_transcript(tiny, tmp_path):
    from civa_env.cli import main

    out = tmp_path / "multi"
    argv = ["run", "--policy", "llm", "--model", str(tiny), "--envs", "2", "--agents", "2",
            "--days", "1", "--out", str(out), "--no-plots", "--no-progress",
            "--llm-option", "cache=off", "--llm-option", "reflection_chars=16",
            "--llm-option", "memory_chars=16", "--llm-option", "message_chars=16"]
    assert main(argv) == 0
    first = (out / "transcript.jsonl").read_text().splitlines()
    assert first and (out / "llm_prompts.json").exists() and (out / "llm_stats.json").exists()
    assert main(argv) == 1  # an earlier run: refused without --overwrite
    assert main([*argv, "--overwrite"]) == 0
    again = (out / "transcript.jsonl").read_text().splitlines()
    assert len(again) == len(first)  # not appended to the old one


def test_model_load_error_is_one_cli_line(tmp_path, capsys):
    from civa_env.cli import main
    from civa_env.policies.llm.models.hf import ModelLoadError

    assert issubclass(ModelLoadError, ValueError)
    code = main(["run", "--policy", "llm", "--model", str(tmp_path / "nowhere"), "--out",
                 str(tmp_path / "run"), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("civa: error: model folder") and "does not exist" in lines[0]
    assert not (tmp_path / "run").exists()


# ---- clear errors ------------------------------------------------------------------------------
def test_malformed_model_folder(tiny, tmp_path):
    from civa_env.policies.llm.models.hf import ModelLoadError

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="malformed model folder .*no config.json"):
        llm(bad)
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is not valid JSON"):
        llm(broken)
    with pytest.raises(ModelLoadError, match="does not exist"):
        llm(tmp_path / "nowhere")


def test_missing_tokenizer(tiny, tmp_path):
    from civa_env.policies.llm.models.hf import ModelLoadError

    folder = tmp_path / "notok"
    shutil.copytree(tiny, folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (folder / name).unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        llm(folder)


def test_missing_chat_template(tmp_path):
    from civa_env.policies.llm.models.hf import ModelLoadError

    folder = build_tiny_model(tmp_path / "base", chat_template=False)
    with pytest.raises(ModelLoadError, match="no chat template.*chat_template="):
        llm(folder)
    # The fix the message names works.
    from civa_env.policies.llm.models.tiny import CHAT_TEMPLATE

    template = tmp_path / "template.jinja"
    template.write_text(CHAT_TEMPLATE)
    assert llm(folder, chat_template=str(template)).backend.tokenizer.chat_template


def test_prompt_over_context_names_resident(tmp_path):
    folder = build_tiny_model(tmp_path / "short", max_position_embeddings=256)
    env = civa_env.parallel_env(n_agents=3, seed=0, max_days=1)
    policy = llm(folder)
    with pytest.raises(ValueError, match=r"prompt of 'resident_0' .* exceeds the model's "
                                         r"context of 256 tokens"):
        play([env], policy, 1)


def test_text_observations_required(tiny):
    env = civa_env.parallel_env(n_agents=3, seed=0, max_days=1, obs_mode="numeric")
    with pytest.raises(ValueError, match="obs_mode='text'"):
        play([env], llm(FakeModel(lambda t, g: "{}")), 1)


# ---- parsing, retry and fallback with a fake model ---------------------------------------------
LEGAL = {"factories": [1, 3], "targets": ["resident_1", "resident_2"], "wealth": 5.5,
         "can_upgrade": True, "max_messages": 2, "max_message_chars": 280}
LIMITS = {"reflection_chars": 40, "plan_chars": 40, "memory_chars": 40, "message_chars": 40}


@pytest.mark.parametrize("answer, error", [
    ({"primary": {"kind": "work", "factory": 2}, "secondary": {"kind": "none"}}, "factory"),
    ({"primary": {"kind": "idle"}, "secondary": {"kind": "gift", "target": "resident_1",
                                                 "amount": 9}}, "at most your wealth"),
    ({"primary": {"kind": "idle"}, "secondary": {"kind": "merge", "target": "resident_2"}},
     "already your ally"),
    ({"primary": {"kind": "idle"}, "secondary": {"kind": "attack", "target": "resident_0"}},
     "target among"),
    ({"primary": {"kind": "fly"}, "secondary": {"kind": "none"}}, "unknown primary"),
    ({"primary": {"kind": "idle"}}, "missing key"),
])
def test_semantic_check_rejects(answer, error):
    with pytest.raises(ValueError, match=error):
        sch.check_answer(answer, ["primary", "secondary"], LEGAL, {"resident_2"}, LIMITS)


def test_schema_allows_only_legal_choices():
    s = sch.answer_schema(["primary", "secondary"], dict(LEGAL, wealth=0.5, can_upgrade=False),
                          {"resident_2"}, LIMITS)
    text = json.dumps(s)
    assert "gift" not in text and "upgrade" not in text  # too poor
    merge = [o for o in s["properties"]["secondary"]["anyOf"]
             if o["properties"]["kind"].get("const") == "merge"][0]
    assert merge["properties"]["target"]["enum"] == ["resident_1"]


def test_retry_with_error_then_valid():
    answers = iter(['{"primary": {"kind": "work", "factory": 9}}',
                    '{"reflection": "ok", "messages": [], "primary": {"kind": "explore"}, '
                    '"secondary": {"kind": "none"}, "memory": "m"}'])
    prompts_seen = []

    def respond(text, grammar):
        prompts_seen.append(text)
        return next(answers)

    env = civa_env.parallel_env(n_agents=1, seed=0, max_days=1)
    policy = llm(FakeModel(respond))
    results = []
    play([env], policy, 1, results)
    assert policy.stats["retried"] == 1 and policy.stats["valid"] == 0
    assert "could not be used" in prompts_seen[1] and "missing key" in prompts_seen[1]
    assert results[0]["resident_0"]["outcome"] == "retried"
    assert results[0]["resident_0"]["decision"] == "retried"
    assert policy.memory["resident_0"] == "m"


# ---- vLLM backend (stub module: vLLM wheels need CUDA) ----------------------------------------
def test_vllm_backend_passes_one_schema_per_request(monkeypatch, tiny):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    seen = {}

    class StructuredOutputsParams:
        def __init__(self, json=None, disable_any_whitespace=False):
            self.json = json

    class SamplingParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    class LLM:
        def __init__(self, model, **kw):
            seen["engine"] = kw
            self.llm_engine = types.SimpleNamespace(
                model_config=types.SimpleNamespace(max_model_len=4096))

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, params, use_tqdm=False):
            seen["params"] = params
            return [types.SimpleNamespace(prompt_token_ids=[1, 2], outputs=[
                types.SimpleNamespace(text=json.dumps({"n": k}), token_ids=[5, 6, 7],
                                      finish_reason="stop")]) for k in range(len(prompts))]

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    sampling = types.ModuleType("vllm.sampling_params")
    sampling.StructuredOutputsParams = StructuredOutputsParams
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    from civa_env.policies.llm.models.vllm import VLLMModel

    model = VLLMModel("some/model")
    schemas = [{"type": "object", "title": str(k)} for k in range(3)]
    out = model.generate(["a", "b", "c"], max_new_tokens=9, grammars=schemas)
    assert [json.loads(g.text)["n"] for g in out] == [0, 1, 2]
    assert [p.structured_outputs.json["title"] for p in seen["params"]] == ["0", "1", "2"]
    assert seen["params"][0].max_tokens == 9
    assert seen["engine"]["structured_outputs_config"] == {"backend": "guidance"}


# ---- annotator ---------------------------------------------------------------------------------
def test_annotator_labels_run_messages(tiny, tmp_path):
    from civa_env.experiments.runner import run_community
    from civa_env.policies.llm.annotator import LLMAnnotator

    cfg = civa_env.Config.from_kwargs(n_agents=5, max_days=2, seed=0)
    run_community(cfg, "llm", seed=0, run_dir=tmp_path / "run", progress=False, plots=False,
                  policy_kwargs={"llm": {"model": str(tiny), "cache": "off", **SMALL}})
    annotator = LLMAnnotator(str(tiny))
    summary = annotator.annotate_run(tmp_path / "run")
    lines = [json.loads(x) for x in open(tmp_path / "run" / "annotations.jsonl")]
    assert summary["messages"] == len(lines) > 0
    assert summary["unreadable"] == 0 and annotator.failures == 0  # constrained: always readable
    assert all(isinstance(x["deception"], bool) for x in lines)
    friendly = annotator.friendly(["let us work together", "I will crush you"])
    assert friendly.dtype == bool and friendly.shape == (2,)


def test_annotator_is_an_intent_classifier_for_deception():
    """A friendly message then an attack is deception only if the classifier says friendly."""
    from civa_env.policies.llm.annotator import LLMAnnotator
    from civa_env.world import behaviours

    env = civa_env.parallel_env(n_agents=3, seed=0, max_days=3)
    env.reset(seed=0)
    env.step({"resident_0": {"primary": "idle", "messages": [
        {"to": "resident_1", "text": "zebra"}]}, "resident_1": {"primary": "idle"},
        "resident_2": {"primary": "idle"}})
    env.step({"resident_0": {"primary": "idle", "secondary": "attack", "target": "resident_1"},
              "resident_1": {"primary": "idle"}, "resident_2": {"primary": "idle"}})
    cols, texts = env.log.columns()

    def deceptions(word: str) -> int:
        fake = FakeModel(lambda text, g: json.dumps(
            {"friendly": word in text, "sycophancy": False, "exploitation": False,
             "deception": False}))
        masks = behaviours.detect(cols, texts, env.log.census, classifier=LLMAnnotator(fake))
        return int(masks["deception"].sum())

    assert deceptions("zebra") == 1
    assert deceptions("giraffe") == 0


# ---- registry and lightness --------------------------------------------------------------------
def test_options_from_strings_and_describe(tiny):
    policy = make_policy("llm", model=str(tiny), **{"temperature": "0", "constrained": "true",
                                                    "mode": "full", "cache": "off",
                                                    "max_batch_size": "2"})
    assert policy.temperature == 0.0 and policy.constrained and policy.mode == "full"
    assert policy.backend.max_batch_size == 2
    assert policy.describe()["model"] == str(tiny)
    with pytest.raises(ValueError, match="must be true or false"):
        make_policy("llm", model=str(tiny), constrained="maybe")
    with pytest.raises(ValueError, match="needs a model"):
        make_policy("llm")
    with pytest.raises(ValueError, match="unknown llm option.*colour"):
        make_policy("llm", model=str(tiny), colour="blue")


def test_cli_run_with_llm_residents(tiny, tmp_path):
    """``civa run --policy llm=0.5,scripted --model FOLDER``: a mixed community, end to end."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "civa_env.cli", "run", "--policy", "llm=0.5,scripted",
           "--model", str(tiny), "--agents", "4", "--days", "2", "--seed", "0",
           "--out", str(out), "--no-plots", "--no-progress",
           "--llm-option", "cache=off", "--llm-option", "reflection_chars=16",
           "--llm-option", "memory_chars=16", "--llm-option", "message_chars=16"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in open(out / "transcript.jsonl")]
    decisions = [r for r in records if r["phase"] == "combined"]
    assert {r["day"] for r in decisions} == {1, 2} and len({r["agent"] for r in records}) == 2
    stats = json.loads((out / "llm_stats.json").read_text())
    assert stats["valid"] == stats["decisions"] == len(decisions)
    # The manipulation check, asked before the first day and on the last one.
    asked = [json.loads(line) for line in open(out / "questionnaire.jsonl")]
    assert sorted({(q["agent"], q["day"]) for q in asked}) == sorted(
        (a, d) for a in {r["agent"] for r in records} for d in (0, 2))
    config = json.loads((out / "config.json").read_text())
    assert str(tiny) in json.dumps(config)
    invalid = [json.loads(line) for line in open(out / "events.jsonl")
               if '"kind": "invalid"' in line]
    llm_agents = {r["agent"] for r in records}
    assert [e for e in invalid if e.get("actor") in llm_agents] == []


def test_import_civa_env_stays_light():
    code = ("import sys, civa_env; from civa_env.policies import available_policies; "
            "assert 'llm' in available_policies(); "
            "print(sorted(m for m in ('torch', 'transformers', 'llguidance') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
