"""The LLM policy's token budget and cost estimate.

* ``max_tokens_total``: once a run's prompt and completion tokens reach it, the policy's next
  call raises ``BudgetExhausted`` instead of asking the model. The runner turns it into a
  clean stop: the run folder keeps the days finished so far (``events.jsonl``), the
  transcript and ``llm_stats.json`` (``"status": "stopped"`` and the reason), and
  ``config.json`` says ``"status": "stopped: ..."``. A call that starts under the budget
  runs to its end (with its retry), so a run may pass the budget by at most one batched
  call: one phase of a day for every resident served, and its retries.
* ``price_per_mtok_in`` / ``price_per_mtok_out``: US dollars per million prompt / completion
  tokens, for ``cost_usd`` in ``llm_stats.json``, ``metrics.json`` and the run summary.

Both count every answer of the run, answers from the cache included (at the token counts
recorded with them): a run replayed from the cache stops where the original stopped, and its
cost is what the run's tokens cost without the cache.
"""

from __future__ import annotations

from dataclasses import dataclass


class BudgetExhausted(ValueError):
    """The run's token budget (llm option ``max_tokens_total``) is spent; the run stops."""


@dataclass(frozen=True)
class Budget:
    """A token limit and the prices of a token (None: no limit, no price)."""

    max_tokens_total: int | None = None
    price_per_mtok_in: float | None = None
    price_per_mtok_out: float | None = None

    def __post_init__(self) -> None:
        if self.max_tokens_total is not None and self.max_tokens_total < 1:
            raise ValueError(f"llm option max_tokens_total must be >= 1, got "
                             f"{self.max_tokens_total}")
        for name in ("price_per_mtok_in", "price_per_mtok_out"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"llm option {name} must be a price >= 0 (USD per million "
                                 f"tokens), got {value}")

    @property
    def priced(self) -> bool:
        """Whether a price was given (then a missing one counts as 0)."""
        return self.price_per_mtok_in is not None or self.price_per_mtok_out is not None

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The estimated cost of these tokens, or None without prices."""
        if not self.priced:
            return None
        cost = (prompt_tokens * (self.price_per_mtok_in or 0.0)
                + completion_tokens * (self.price_per_mtok_out or 0.0)) / 1e6
        return round(cost, 6)

    def spent(self, tokens: int) -> bool:
        """Whether ``tokens`` reach the limit."""
        return self.max_tokens_total is not None and tokens >= self.max_tokens_total
