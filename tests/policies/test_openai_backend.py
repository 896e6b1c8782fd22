"""The OpenAI-compatible backend against a real HTTP server on loopback, and token budgets.

``ChatServer`` is a ``ThreadingHTTPServer`` in a thread that implements
``POST /v1/chat/completions``: it answers each request with a valid answer built from the
request's JSON schema (``fake.valid_answer``), free-text requests with an echo of the last
message, counts the requests in flight, and can be told to be slow, to answer 429 or 500, or
to answer garbage. Every usage is 100 prompt and 10 completion tokens, so budgets and costs
have known answers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import civa_env
from civa_env.cli import main
from civa_env.experiments.runner import run_community
from civa_env.experiments.sweep import Sweep
from civa_env.policies import make_policy
from civa_env.policies.llm.budget import Budget, BudgetExhausted
from civa_env.policies.llm.models import load_model
from civa_env.policies.llm.models.fake import valid_answer
from civa_env.policies.llm.models.openai_server import OpenAIModel, ServerError

PROMPT_TOKENS, COMPLETION_TOKENS = 100, 10
SECRET = "sk-test-SECRET"
FAST = {"backoff_s": 0.01, "timeout_s": 5.0}  # keeps failing tests quick
SMALL = dict(reflection_chars=16, memory_chars=24, message_chars=16, plan_chars=16)


class ChatServer:
    """A chat-completions server on 127.0.0.1; ``reply(n, body)`` may override request n
    (1-based arrival order) with ``(status, headers, payload)``, or return None to answer."""

    def __init__(self, delay_s: float = 0.0,
                 reply: Callable[[int, dict], tuple[int, dict, Any] | None] | None = None):
        self.delay_s, self.reply = delay_s, reply
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.times: list[float] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client that gave up
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, body: dict) -> dict:
        """A chat completion for ``body``: valid JSON for a schema, else an echo."""
        fmt = body.get("response_format")
        if fmt is not None:
            text = json.dumps(valid_answer(fmt["json_schema"]["schema"]))
        else:
            text = "echo: " + body["messages"][-1]["content"]
        return {"id": "x", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                          "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    server.headers.append(dict(self.headers))
                    server.times.append(time.monotonic())
                    n = len(server.bodies)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if self.path != "/v1/chat/completions":
                        status, headers, payload = 404, {}, {"error": {"message": self.path}}
                    else:
                        override = server.reply(n, body) if server.reply else None
                        time.sleep(server.delay_s)
                        status, headers, payload = override or (200, {}, server.answer(body))
                finally:
                    with server.lock:
                        server.in_flight -= 1
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def chat_server() -> Iterator[Callable[..., ChatServer]]:
    servers: list[ChatServer] = []

    def start(**kwargs: Any) -> ChatServer:
        servers.append(ChatServer(**kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def policy_over(server: ChatServer, **options: Any):
    return make_policy("llm", model="m", backend="openai", base_url=server.url, cache="off",
                       **{**SMALL, **FAST, **options})


def read(run: Path, name: str) -> Any:
    return json.loads((run / name).read_text())


def census_days(run: Path) -> int:
    lines = (run / "events.jsonl").read_text().splitlines()
    return sum(json.loads(line)["kind"] == "census" for line in lines)


def test_load_model_builds_the_openai_backend(chat_server):
    server = chat_server()
    model = load_model("m", "openai", base_url=server.url + "/")
    assert isinstance(model, OpenAIModel)
    assert model.identity == f"openai:{server.url}:m"  # server and model: the cache keeps apart
    other = load_model("m", "openai", base_url="http://user:pw-1234@example.org:9/v1")
    assert other.identity == "openai:http://example.org:9/v1:m"
    with pytest.raises(ValueError, match="base_url must be an http"):
        load_model("m", "openai", base_url="localhost:8000")
    with pytest.raises(ValueError, match="CIVA_NO_SUCH_KEY"):
        load_model("m", "openai", base_url=server.url, api_key_env="CIVA_NO_SUCH_KEY")


def test_a_community_runs_end_to_end_over_http(chat_server, tmp_path):
    server = chat_server()
    policy = policy_over(server)
    cfg = civa_env.Config(n_agents=3, max_days=2, seed=0)
    run_community(cfg, "llm", seed=0, run_dir=tmp_path / "run", policies={"llm": policy},
                  progress=False, plots=False)
    run = tmp_path / "run"
    assert read(run, "metrics.json")["status"] == "complete"
    stats = read(run, "llm_stats.json")
    assert stats["decisions"] == stats["valid"] == 6 and stats["fallback"] == 0
    # Day-0 and last-day questionnaires and one combined call a resident-day: 12 requests,
    # each with its resident's schema as a strict json_schema response format.
    assert len(server.bodies) == stats["by_phase"]["questionnaire"]["valid"] + 6 == 12
    for body in server.bodies:
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        assert fmt["json_schema"]["name"] == "answer" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["schema"]["type"] == "object"
        assert body["model"] == "m" and body["temperature"] == 0.0 and "seed" in body
        assert body["messages"][0]["role"] == "system"
    assert stats["prompt_tokens"] == 12 * PROMPT_TOKENS
    assert stats["completion_tokens"] == 12 * COMPLETION_TOKENS
    assert stats["tokens"] == 12 * (PROMPT_TOKENS + COMPLETION_TOKENS)
    records = [json.loads(line) for line in open(run / "transcript.jsonl")]
    assert len(records) == 12 and {r["prompt_tokens"] for r in records} == {PROMPT_TOKENS}
    assert read(run, "config.json")["policies"]["llm"]["model_identity"] == f"openai:{server.url}:m"


def test_unusable_answers_are_checked_retried_and_fall_back(chat_server, tmp_path):
    # First attempts get "{}" (valid JSON, not an answer); retries (which carry the
    # model's previous answer) get a valid one: every decision is "retried".
    def reply(n: int, body: dict):
        if not any(m["role"] == "assistant" for m in body["messages"]):
            return 200, {}, {**server.answer(body), "choices": [{
                "index": 0, "finish_reason": "length",
                "message": {"role": "assistant", "content": "{}"}}]}
        return None

    server = chat_server(reply=reply)
    policy = policy_over(server, questionnaire=False)
    run_community(civa_env.Config(n_agents=3, max_days=1, seed=0), "llm", seed=0,
                  run_dir=tmp_path / "run", policies={"llm": policy}, progress=False,
                  plots=False)
    stats = read(tmp_path / "run", "llm_stats.json")
    assert stats["retried"] == 3 and stats["valid"] == stats["fallback"] == 0
    first = [json.loads(line) for line in open(tmp_path / "run" / "transcript.jsonl")
             if json.loads(line)["attempt"] == 1]
    assert {r["finish"] for r in first} == {"length"}
    assert all("cut off" in r["error"] for r in first)


def test_requests_are_concurrent_within_the_bound(chat_server):
    server = chat_server(delay_s=0.15)
    model = OpenAIModel("m", base_url=server.url, max_concurrency=3)
    prompts = [f"row {k}" for k in range(9)]
    start = time.monotonic()
    gens = model.generate(prompts, max_new_tokens=8)
    elapsed = time.monotonic() - start
    assert server.max_in_flight == 3  # the bound is reached and never passed
    assert elapsed < 9 * 0.15  # not one at a time
    assert [g.text for g in gens] == [f"echo: row {k}" for k in range(9)]  # rows keep order
    assert "response_format" not in server.bodies[0]  # free text: no schema
    assert all(g.prompt_tokens == PROMPT_TOKENS for g in gens)


def test_a_slow_server_hits_the_timeout_and_the_retry_answers(chat_server):
    def reply(n: int, body: dict):
        if n == 1:
            time.sleep(1.0)  # past the client's timeout
        return None

    server = chat_server(reply=reply)
    model = OpenAIModel("m", base_url=server.url, timeout_s=0.25, max_retries=2, backoff_s=0.01)
    [gen] = model.generate(["hello"], max_new_tokens=8)
    assert gen.text == "echo: hello"
    assert len(server.bodies) == 2 and model.retries == 1

    stuck = chat_server(reply=lambda n, body: time.sleep(1.0))
    model = OpenAIModel("m", base_url=stuck.url, timeout_s=0.2, max_retries=1, backoff_s=0.01)
    with pytest.raises(ServerError, match=r"after 2 attempts: no answer within timeout_s=0.2"):
        model.generate(["hello"], max_new_tokens=8)


def test_429_then_success_retries_after_retry_after(chat_server):
    def reply(n: int, body: dict):
        if n == 1:
            return 429, {"Retry-After": "1"}, {"error": {"message": "slow down"}}
        return None

    server = chat_server(reply=reply)
    model = OpenAIModel("m", base_url=server.url, max_retries=3, backoff_s=0.01)
    [gen] = model.generate(["hi"], max_new_tokens=8)
    assert gen.text == "echo: hi" and len(server.bodies) == 2
    assert server.times[1] - server.times[0] >= 0.9  # waited as told, not backoff_s

    millis = chat_server(reply=lambda n, body: (503, {"retry-after-ms": "50"}, "busy")
                         if n <= 2 else None)
    [gen] = OpenAIModel("m", base_url=millis.url, backoff_s=5.0).generate(["x"],
                                                                           max_new_tokens=8)
    assert gen.text == "echo: x" and len(millis.bodies) == 3


def test_a_client_error_is_not_retried(chat_server):
    server = chat_server(reply=lambda n, body: (400, {}, {"error": {
        "message": "maximum context length is 2048 tokens"}}))
    model = OpenAIModel("m", base_url=server.url, max_retries=3, backoff_s=0.01)
    with pytest.raises(ServerError, match=r"at the first attempt: HTTP 400: maximum context"):
        model.generate(["hi"], max_new_tokens=8)
    assert len(server.bodies) == 1


def test_a_failing_server_ends_the_run_with_a_clear_error(chat_server, tmp_path, capsys):
    # Day 1 (3 questionnaires, 3 decisions) is answered; from then on every request fails.
    server = chat_server(reply=lambda n, body: (500, {}, {"error": {"message": "engine down"}})
                         if n > 6 else None)
    run = tmp_path / "run"
    code = main(["run", "--policy", "llm", "--model", "m", "--agents", "3", "--days", "3",
                 "--out", str(run), "--no-progress", "--no-plots",
                 "--llm-option", "backend=openai", "--llm-option", f"base_url={server.url}",
                 "--llm-option", "cache=off", "--llm-option", "max_retries=2",
                 "--llm-option", "backoff_s=0.01"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.count("\n") == 0 and err.startswith("civa: error: the OpenAI-compatible server "
                                                   f"at {server.url} gave no answer")
    assert "after 3 attempts: HTTP 500: engine down" in err
    assert len(server.bodies) >= 6 + 3  # each failing row was tried 1 + max_retries times
    config = read(run, "config.json")
    assert config["status"].startswith("failed: ServerError: the OpenAI-compatible server")
    assert census_days(run) == 1  # the finished day is kept
    assert not (run / "metrics.json").exists()
    assert len((run / "transcript.jsonl").read_text().splitlines()) == 6
    assert read(run, "llm_stats.json")["days"] == 1


def test_the_api_key_is_sent_but_never_written_or_logged(chat_server, tmp_path, capsys,
                                                         caplog, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # On day 2 the server echoes the key into its errors (a 503, retried and logged, then a
    # 401 for that retry): neither the log nor the error may carry it. Only the retry (the
    # same body again) gets the 401: a 401 for another resident's concurrent request could
    # end the run before the retry was logged.
    busy: dict[str, str] = {}

    def reply(n: int, body: dict):
        key = json.dumps(body, sort_keys=True)
        if n == 7:
            busy["body"] = key
            return 503, {"Retry-After": "0"}, {"error": {"message": f"{SECRET} is busy"}}
        if busy.get("body") == key:
            return 401, {}, {"error": {"message": f"key {SECRET} is revoked"}}
        return None

    server = chat_server(reply=reply)
    caplog.set_level(logging.DEBUG)
    run = tmp_path / "run"
    code = main(["run", "--policy", "llm", "--model", "m", "--agents", "3", "--days", "2",
                 "--out", str(run), "--no-progress", "--no-plots",
                 "--llm-option", "backend=openai", "--llm-option", f"base_url={server.url}",
                 "--llm-option", "cache=off"])
    out, err = capsys.readouterr()
    assert code == 1 and "HTTP 401: key *** is revoked" in err
    assert {h["Authorization"] for h in server.headers} == {f"Bearer {SECRET}"}
    files = [p for p in run.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"config.json", "events.jsonl", "transcript.jsonl",
                                       "llm_stats.json", "residents.json"}
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in out + err
    assert "HTTP Request: POST" in caplog.text and "*** is busy; retry 1 of 4" in caplog.text
    assert SECRET not in caplog.text


def test_the_budget_stops_a_run_cleanly(chat_server, tmp_path, capsys):
    server = chat_server()
    # 3 residents a day, 110 tokens each: day 1 ends at 330, day 2 (begun under the budget)
    # at 660; day 3's first call is refused.
    policy = policy_over(server, questionnaire=False, max_tokens_total=500)
    run = tmp_path / "run"
    with pytest.raises(BudgetExhausted, match="token budget is spent: 660 tokens"):
        run_community(civa_env.Config(n_agents=3, max_days=5, seed=0), "llm", seed=0,
                      run_dir=run, policies={"llm": policy}, progress=False, plots=False)
    assert len(server.bodies) == 6
    config = read(run, "config.json")
    assert config["status"].startswith("stopped: the token budget is spent")
    assert config["policies"]["llm"]["max_tokens_total"] == 500
    stats = read(run, "llm_stats.json")
    assert stats["status"] == "stopped" and "before the combined call of day 3" in stats["stopped"]
    assert stats["tokens"] == 660 and stats["days"] == 2
    assert census_days(run) == 2
    assert len((run / "transcript.jsonl").read_text().splitlines()) == 6
    assert not (run / "metrics.json").exists()

    # civa run: one line and its own exit status.
    code = main(["run", "--policy", "llm", "--model", "m", "--agents", "3", "--days", "5",
                 "--out", str(tmp_path / "cli"), "--no-progress", "--no-plots",
                 "--llm-option", "backend=openai", "--llm-option", f"base_url={server.url}",
                 "--llm-option", "cache=off", "--llm-option", "questionnaire=false",
                 "--llm-option", "max_tokens_total=500"])
    err = capsys.readouterr().err.strip()
    assert code == 3 and err.count("\n") == 0
    assert err.startswith("civa: stopped: the token budget is spent: 660 tokens")
    assert read(tmp_path / "cli", "config.json")["status"].startswith("stopped:")


def test_the_cost_estimate_comes_from_usage(chat_server, tmp_path, capsys):
    server = chat_server()
    run = tmp_path / "run"
    code = main(["run", "--policy", "llm", "--model", "m", "--agents", "3", "--days", "2",
                 "--out", str(run), "--no-progress", "--no-plots",
                 "--llm-option", "backend=openai", "--llm-option", f"base_url={server.url}",
                 "--llm-option", "cache=off", "--llm-option", "questionnaire=false",
                 "--llm-option", "price_per_mtok_in=2.5", "--llm-option", "price_per_mtok_out=10"])
    out = capsys.readouterr().out
    assert code == 0
    # 6 requests: 600 prompt tokens at $2.5/M and 60 completion tokens at $10/M.
    cost = (600 * 2.5 + 60 * 10) / 1e6
    stats = read(run, "llm_stats.json")
    assert stats["cost_usd"] == pytest.approx(cost)
    assert stats["price_per_mtok_in"] == 2.5 and stats["price_per_mtok_out"] == 10
    usage = read(run, "metrics.json")["llm"]["usage"]["llm"]
    assert usage == {"prompt_tokens": 600, "completion_tokens": 60, "tokens": 660,
                     "cost_usd": pytest.approx(cost), "max_tokens_total": None}
    assert f"LLM tokens (llm): 660 (prompt 600, completion 60), estimated cost ${cost:.4f}" in out
    assert Budget().cost_usd(10, 10) is None
    assert Budget(price_per_mtok_in=1.0).cost_usd(2_000_000, 5) == 2.0


def test_sweep_sums_tokens_and_cost_per_cell(chat_server, tmp_path, capsys):
    server = chat_server()
    options = {"model": "m", "backend": "openai", "base_url": server.url, "cache": "off",
               "questionnaire": False, "price_per_mtok_in": 1.0, "price_per_mtok_out": 1.0}
    sweep = Sweep(tmp_path / "sweep", ["baseline", "with:power"], [1.0], 2,
                  civa_env.Config(n_agents=3, max_days=1), "llm", {"llm": options})
    report = sweep.run(workers=1, progress=False)
    assert not report.failures
    rows = (tmp_path / "sweep" / "results.csv").read_text().splitlines()
    header = rows[0].split(",")
    tokens = [float(r.split(",")[header.index("llm_tokens")]) for r in rows[1:]]
    assert tokens == [330.0] * 4  # 3 residents x 110 tokens, each run
    assert [(c["condition"], c["runs"], c["llm_tokens"]) for c in report.usage] == [
        ("baseline", 2, 660), ("with:power", 2, 660)]
    assert report.usage[0]["llm_cost_usd"] == pytest.approx(660 / 1e6)
    # Rerun: the rows are read back from the table with their usage.
    again = sweep.run(workers=1, progress=False)
    assert again.ran == 0 and again.usage == report.usage
