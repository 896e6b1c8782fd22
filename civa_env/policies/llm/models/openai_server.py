"""The OpenAI-compatible backend (extra ``openai``): any chat-completions server over HTTP.

A ``vllm serve`` on a GPU node, llama.cpp's ``llama-server``, Ollama or a hosted API: each
row of a batch is one ``POST {base_url}/chat/completions``, and a row with a grammar carries
its JSON schema as the OpenAI structured-outputs response format::

    {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}}

The batch's requests are sent concurrently (asyncio and httpx), at most ``max_concurrency``
in flight. A request that times out, cannot connect, or gets 429 or a 5xx is retried up to
``max_retries`` times with exponential backoff (or after the server's ``Retry-After``); any
other error, or the last failure, raises ``ServerError`` naming the server, the status and
its message. The answer is still parsed and checked by the policy like any other.

The API key is read from the environment variable ``api_key_env`` (none is needed for a
local server) and sent only in the ``Authorization`` header: it is never logged, never part
of the identity, and scrubbed from any error message.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from civa_env.policies.llm.models.base import (
    Generation,
    Grammar,
    LanguageModel,
    Prompt,
    as_chat_text,
    as_messages,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://localhost:8000/v1"  # where ``vllm serve`` listens
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})  # and any other 5xx
MAX_WAIT_S = 60.0  # the longest pause between two tries, whatever Retry-After says


class ServerError(ConnectionError):
    """The server gave no usable answer (after the retries, or a status not worth retrying).

    A ``ConnectionError`` (an ``OSError``): ``civa`` reports it as one line.
    """


class OpenAIModel(LanguageModel):
    """An OpenAI-compatible chat-completions server behind the batch-first interface.

    Args:
        model: the model name the server knows (``Qwen/Qwen2.5-7B-Instruct``, ``gpt-4o``...).
        base_url: the API root, ending in ``/v1`` (``http://host:8000/v1``).
        api_key_env: the environment variable holding the API key; when the default
            ``OPENAI_API_KEY`` is unset no key is sent (local servers need none), when
            another name is given it must be set.
        max_concurrency: requests in flight at once.
        timeout_s: seconds a request may take.
        max_retries: further tries of a request that timed out, could not connect, or got
            429 or a 5xx.
        backoff_s: pause before the first retry; it doubles with each retry (with jitter),
            unless the server says how long to wait (``Retry-After``).
    """

    def __init__(self, model: str, *, base_url: str = DEFAULT_BASE_URL,
                 api_key_env: str = DEFAULT_API_KEY_ENV, max_concurrency: int = 8,
                 timeout_s: float = 60.0, max_retries: int = 4, backoff_s: float = 1.0) -> None:
        try:
            import httpx  # noqa: F401
        except ImportError as err:
            raise ImportError("the openai backend needs httpx: pip install -e .[openai]") from err
        if max_concurrency < 1:
            raise ValueError(f"llm option max_concurrency must be >= 1, got {max_concurrency}")
        if timeout_s <= 0:
            raise ValueError(f"llm option timeout_s must be > 0, got {timeout_s}")
        if max_retries < 0:
            raise ValueError(f"llm option max_retries must be >= 0, got {max_retries}")
        if backoff_s < 0:
            raise ValueError(f"llm option backoff_s must be >= 0, got {backoff_s}")
        parts = urlsplit(str(base_url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"llm option base_url must be an http(s) URL such as "
                             f"{DEFAULT_BASE_URL}, got {base_url!r}")
        key = os.environ.get(api_key_env, "")
        if not key and api_key_env != DEFAULT_API_KEY_ENV:
            raise ValueError(f"the environment variable {api_key_env} (llm option "
                             f"api_key_env) is not set; export the API key there")
        self.name = str(model)
        # Credentials never leave this object: no user:password in the URL shown anywhere.
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.base_url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._url = str(base_url).rstrip("/") + "/chat/completions"
        self._secrets = [s for s in (key, parts.password) if s and len(s) >= 4]
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.max_concurrency, self.timeout_s = int(max_concurrency), float(timeout_s)
        self.max_retries, self.backoff_s = int(max_retries), float(backoff_s)
        self.requests = 0  # HTTP requests sent, retries included
        self.retries = 0
        self._rng = random.Random(0)  # jitter of the backoff only

    @property
    def identity(self) -> str:
        """Server and model, so that the answer cache keeps servers apart."""
        return f"openai:{self.base_url}:{self.name}"

    def generate(self, prompts: Sequence[Prompt], *, max_new_tokens: int,
                 temperature: float = 0.0, seed: int | None = None,
                 grammars: Sequence[Grammar] | None = None) -> list[Generation]:
        """One request per row, sent concurrently; the answers in the rows' order.

        Raises:
            ServerError: a row got no answer (the message names the server and the status).
        """
        if not prompts:
            return []
        grammars = list(grammars) if grammars is not None else [None] * len(prompts)
        bodies = [self._body(p, g, max_new_tokens, temperature,
                             None if seed is None else seed + k)
                  for k, (p, g) in enumerate(zip(prompts, grammars, strict=True))]
        start = time.perf_counter()
        answers = _run(self._send_all(bodies))
        latency = time.perf_counter() - start
        out = []
        for prompt, (text, finish, usage) in zip(prompts, answers, strict=True):
            prompt_tokens = usage.get("prompt_tokens")
            completion_tokens = usage.get("completion_tokens")
            # A server that reports no usage: the interface's approximate count.
            if not isinstance(prompt_tokens, int):
                prompt_tokens = self.count_tokens(prompt)
            if not isinstance(completion_tokens, int):
                completion_tokens = len(text) // 4
            out.append(Generation(text, prompt_tokens, completion_tokens, latency, finish))
        return out

    # ---- requests ---------------------------------------------------------------------------
    def _body(self, prompt: Prompt, grammar: Grammar, max_new_tokens: int, temperature: float,
              seed: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.name, "messages": as_messages(prompt),
                                "max_tokens": max_new_tokens, "temperature": temperature}
        if seed is not None:
            body["seed"] = seed
        if grammar is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "answer", "schema": grammar, "strict": True}}
        return body

    async def _send_all(self, bodies: list[dict[str, Any]]) -> list[tuple[str, str, dict]]:
        import httpx

        limit = asyncio.Semaphore(self.max_concurrency)
        limits = httpx.Limits(max_connections=self.max_concurrency,
                              max_keepalive_connections=self.max_concurrency)
        async with httpx.AsyncClient(headers=self._headers, timeout=self.timeout_s,
                                     limits=limits) as client:
            async def one(body: dict[str, Any]) -> tuple[str, str, dict]:
                async with limit:
                    return await self._send(client, body)

            tasks = [asyncio.ensure_future(one(b)) for b in bodies]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:  # one row failed for good: the batch is lost anyway
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    async def _send(self, client: Any, body: dict[str, Any]) -> tuple[str, str, dict]:
        """One row's request with its retries: (text, finish, usage)."""
        import httpx

        attempts = self.max_retries + 1
        for attempt in range(1, attempts + 1):
            self.requests += 1
            wait: float | None = None
            try:
                response = await client.post(self._url, json=body)
            except httpx.TimeoutException:
                problem = f"no answer within timeout_s={self.timeout_s:g} s"
            except httpx.TransportError as err:
                problem = f"cannot connect ({type(err).__name__}: {err})"
            else:
                if response.status_code == 200:
                    return self._answer(response, attempt)
                problem = f"HTTP {response.status_code}: {_message(response)}"
                if not _retryable(response.status_code):
                    raise self._error(problem, attempt)
                wait = _retry_after(response.headers)
            if attempt == attempts:
                raise self._error(problem, attempt)
            if wait is None:
                wait = self.backoff_s * 2 ** (attempt - 1) * (0.5 + 0.5 * self._rng.random())
            wait = min(max(wait, 0.0), MAX_WAIT_S)
            self.retries += 1
            log.info("%s: %s; retry %d of %d in %.2f s", self.base_url, self._scrub(problem),
                     attempt, self.max_retries, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _answer(self, response: Any, attempt: int) -> tuple[str, str, dict]:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise self._error(f"the answer is not a chat completion: "
                              f"{response.text[:200]!r}", attempt) from None
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        return text, finish, usage

    def _error(self, problem: str, attempts: int) -> ServerError:
        tries = f"after {attempts} attempts" if attempts > 1 else "at the first attempt"
        return ServerError(self._scrub(
            f"the OpenAI-compatible server at {self.base_url} gave no answer for model "
            f"{self.name!r} {tries}: {problem}"))

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def count_tokens(self, prompt: Prompt) -> int:
        """Approximate (the server's tokenizer is not at hand): characters / 4."""
        return len(as_chat_text(prompt)) // 4


def _retryable(status: int) -> bool:
    return status in RETRY_STATUS or status >= 500


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, or ``Retry-After`` in seconds
    or as an HTTP date; None when it says nothing usable."""
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:  # an HTTP date without a zone is GMT
                when = when.replace(tzinfo=datetime.timezone.utc)
            return when.timestamp() - time.time()
    except (TypeError, ValueError, OverflowError):
        return None


def _message(response: Any) -> str:
    """The error message of a response body (OpenAI's ``{"error": {"message"}}`` or text)."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    return json.dumps(data)[:300]


def _run(coro: Any) -> Any:
    """Run a coroutine to the end from synchronous code, even inside a running event loop
    (a notebook): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
