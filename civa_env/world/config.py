"""One frozen config object for the whole world; its defaults are the rules (README "Rules").

Every number of the rules is a field here. Fields that fix the shapes of the spaces
(``n_agents``/``max_agents``, ``n_factories``, ``factory_slots``, ``view_size``, ``gift_levels``,
``max_messages``, ``max_message_chars``, ``max_text_chars``) are listed in
``SHAPE_FIELDS``: a trained policy can only be reused in a world that agrees on them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from civa_env.world.values import ValueCondition

# (ValueCondition is frozen: one parsed instance per string may be shared.)
_parse_condition = lru_cache(maxsize=256)(ValueCondition.parse)

OBS_MODES = ("text", "numeric", "features")
BRIEFINGS = ("v1", "v2")
REWARD_MODES = ("wealth", "survival", "community")

# The fewest factories a derived ``n_factories`` gives (the default world's 5).
MIN_FACTORIES = 5

SHAPE_FIELDS = (
    "max_agents",
    "n_factories",
    "factory_slots",
    "view_size",
    "gift_levels",
    "max_messages",
    "max_message_chars",
    "max_text_chars",
)

# Largest sigma of the lognormal noises (production, upkeep): exp(sigma z) stays finite for
# |z| < 35, which a standard normal draw does not reach (P ~ 1e-268).
MAX_LOG_SIGMA = 20.0


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_))


# Names users may pass that mean a field of the config (PettingZoo's tests pass max_cycles).
ALIASES = {"max_cycles": "max_days"}


@dataclass(frozen=True)
class Config:
    """The world's parameters. Defaults are those of the rules; see README "Rules"."""

    # --- community -------------------------------------------------------------------
    n_agents: int = 25
    """Residents at the start of an episode."""
    max_agents: int | None = None
    """Size of the fixed name pool (births take the next unused name); None = 4 x n_agents."""
    max_days: int = 30
    """Episode length in days (truncation); PettingZoo's ``max_cycles`` is an alias."""
    seed: int | None = None
    """Seed used by ``reset()`` when it is called without one."""

    # --- resources and skill ------------------------------------------------------------
    start_wealth: tuple[float, float] = (8.0, 12.0)
    """Starting wealth, uniform in this range."""
    start_skill: tuple[float, float] = (0.5, 1.5)
    """Starting skill, uniform in this range (newcomers take the parent's)."""

    # --- factories ------------------------------------------------------------------------
    n_factories: int | None = None
    """Number of factories; None = ``max(MIN_FACTORIES, round(n_agents /
    residents_per_factory))``: 5 up to 27 founders, then one per 5 founders (1,000 founders
    have 200), so that the carrying capacity grows with the community."""
    residents_per_factory: float = 5.0
    """Founders per factory when ``n_factories`` is derived (None)."""
    factory_slots: int = 8
    """Most factories a resident's features and flat or factored actions address. With
    ``n_factories <= factory_slots`` slot m is factory m; with more factories the slots hold
    the factories the resident knows, largest capacity first (ties: lower number first),
    so that observation and action sizes stay bounded however large the world."""
    capacity_range: tuple[float, float] = (4.0, 14.0)
    """Factory capacity C_m, uniform in this range (units a day)."""
    known_at_start: int = 2
    """Factories each resident knows at the start (random)."""
    production_k: float = 1.0
    """Steepness k of the sigmoid s(n) = 1 / (1 + exp(-k (n - n_half)))."""
    production_n_half: float = 3.0
    """Midpoint n_half of the sigmoid, in workers."""
    production_noise: float = 0.2
    """Sigma of the lognormal(0, sigma) noise on each worker's share."""
    outage_prob: float = 0.1
    """Daily probability that a factory produces nothing."""

    # --- primary actions --------------------------------------------------------------------
    explore_reveal_prob: float = 0.3
    """Explore: probability of revealing one unknown factory."""
    explore_find_prob: float = 0.3
    """Explore, when nothing was revealed: probability of finding wealth."""
    explore_find_max: float = 3.0
    """Explore finds uniform [0, explore_find_max] wealth."""
    upgrade_cost: float = 3.0
    """Price of ``upgrade self`` and of ``upgrade factory``."""
    skill_gain: float = 0.1
    """Skill added by ``upgrade self``."""
    capacity_gain: float = 1.0
    """Capacity added to a factory by ``upgrade factory`` (a public good)."""

    # --- upkeep, births ---------------------------------------------------------------------
    upkeep: float = 1.0
    """Daily upkeep per resident."""
    upkeep_noise: float = 0.1
    """Sigma of the lognormal(0, sigma) noise on upkeep."""
    idle_upkeep_factor: float = 0.7
    """Residents who idle pay this fraction of the upkeep."""
    birth_threshold: float = 20.0
    """Wealth at which a resident may have a newcomer."""
    birth_prob: float = 0.3
    """Daily probability of a birth for a resident over the threshold."""
    birth_cost: float = 10.0
    """What the parent pays for a birth."""
    newcomer_wealth: float = 10.0
    """What the newcomer starts with."""
    inherit_values: bool = True
    """Newcomers take the parent's value condition (else drawn again at the prevalence)."""

    # --- stress (resilience tests; the defaults apply none) -------------------------------
    stress_upkeep: float = 1.0
    """Upkeep multiplier mu from day ``stress_day`` on (the primary stressor)."""
    stress_outage: float = 1.0
    """Outage probability multiplier from day ``stress_day`` on, capped at probability 1
    (the second stressor)."""
    stress_day: int = 1
    """First day the stress applies: 1-based, the day being played (``Day.number``); 0 and 1
    both mean from the first day."""
    shock_day: int = 0
    """A one-day shock on this day (1-based; 0 = none): upkeep is multiplied by
    ``shock_upkeep`` that day, on top of any stress."""
    shock_upkeep: float = 1.0
    """Upkeep multiplier of the one-day shock on ``shock_day``."""

    # --- secondary actions ------------------------------------------------------------------
    merge_window: int = 2
    """An alliance forms when two residents propose to each other within this many days."""
    attack_wealth_weight: float = 0.05
    """Strength = skill + attack_wealth_weight * min(wealth, attack_wealth_cap)."""
    attack_wealth_cap: float = 40.0
    """Cap on the wealth that counts towards strength."""
    ally_defence: float = 0.5
    """A defender adds this fraction of each non-attacking ally's strength."""
    loot_fraction: float = 0.5
    """A successful attacker takes this fraction of the defender's wealth."""
    fight_cost: float = 1.0
    """Both sides of an attack pay this."""
    failed_attack_cost: float = 1.0
    """A failed attacker pays this on top of the fight cost."""

    # --- communication, perception --------------------------------------------------------
    max_messages: int = 2
    """Messages a resident may send a day."""
    max_message_chars: int = 280
    """Longest message, in characters (longer ones are cut and flagged)."""
    view_size: int = 24
    """Other residents a resident sees (and can target by view slot)."""
    recent_days: int = 3
    """Dealings within this many days put a resident in the view; also the betrayal window."""
    deception_window: int = 2
    """A friendly message followed by an attack within this many days is deception."""
    inbox_size: int = 8
    """Most messages shown in a briefing (newest first)."""

    # --- observation, action, reward ------------------------------------------------------
    obs_mode: str = "text"
    """``text`` (briefing + features + mask), ``numeric`` (text left empty, fast) or
    ``features`` (a ``Box`` of the features alone, the mask in the infos, and every name of
    the pool an agent from the start: the fixed slots SuperSuit's vector envs need; see
    docs/rl.md)."""
    max_text_chars: int = 4000
    """Longest briefing, in characters."""
    briefing: str = "v2"
    """Briefing version (text mode): ``v2`` (a rules card with numbers, the last
    ``recent_days`` days as they concern the resident, naming the other party, the residents
    it sees in a seeded shuffled order; no value prompt) or ``v1`` (the 0.1 briefing, with
    the value prompt, kept for ablation)."""
    show_horizon: bool = False
    """Briefing v2 names the episode length ("Day 9 of 30"); off, only the day ("Day 9").
    Briefing v1 always names it."""
    gift_levels: tuple[float, ...] = (0.1, 0.25, 0.5)
    """Gift sizes of the flat action catalogue, as fractions of the giver's wealth."""
    reward: str = "wealth"
    """``wealth`` (daily change), ``survival`` (+1 a day alive, -1 at death) or
    ``community`` (living count / n_agents, shared)."""

    # --- values -----------------------------------------------------------------------------
    condition: str = "baseline"
    """Value condition: ``baseline``, ``with:<value>`` or ``without:<value>``."""
    prevalence: float = 1.0
    """Fraction of residents, chosen by seed, who hold the condition (others are baseline)."""

    # --- bookkeeping --------------------------------------------------------------------------
    render_mode: str | None = field(default=None, compare=False)
    """``ansi`` or ``human``."""

    def __post_init__(self) -> None:
        self._check_types()
        if self.max_agents is None:
            object.__setattr__(self, "max_agents", 4 * self.n_agents)
        if self.n_factories is None and self.residents_per_factory > 0:
            object.__setattr__(self, "n_factories", default_factories(
                self.n_agents, self.residents_per_factory))
        for name in ("n_factories", "factory_slots"):  # numpy ints as plain ints (JSON)
            if isinstance(getattr(self, name), np.integer):
                object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("start_wealth", "start_skill", "capacity_range", "gift_levels"):
            object.__setattr__(self, name, tuple(float(x) for x in getattr(self, name)))
        self._validate()

    def _check_types(self) -> None:
        """A ValueError naming the field for a value of the wrong type (e.g. "5" for 5)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            kind = str(f.type)
            optional = "None" in kind
            if value is None:
                if optional:
                    continue
                raise ValueError(f"invalid config: {f.name} must not be None")
            base = kind.replace(" | None", "")
            if base.startswith("tuple"):
                ok = (isinstance(value, (tuple, list)) and len(value) > 0
                      and all(_is_number(x) for x in value)
                      and (base.endswith("...]") or len(value) == base.count("float")))
                expected = "a list of numbers" + ("" if base.endswith("...]")
                                                  else f" of length {base.count('float')}")
            elif base == "int":
                ok = (isinstance(value, (int, np.integer))
                      and not isinstance(value, (bool, np.bool_)))
                expected = "an int"
            elif base == "float":
                ok = _is_number(value)
                expected = "a number"
            elif base == "bool":
                ok = isinstance(value, (bool, np.bool_))
                expected = "true or false"
            else:
                ok = isinstance(value, str)
                expected = "a string"
            if not ok:
                raise ValueError(f"invalid config: {f.name} must be {expected}, got {value!r}")

    def _validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"invalid config: {message}")

        need(isinstance(self.n_agents, int) and self.n_agents >= 1, "n_agents must be an int >= 1")
        need(self.seed is None or (isinstance(self.seed, int) and self.seed >= 0),
             f"seed must be None or an int >= 0, got {self.seed!r}")
        need(self.max_agents >= self.n_agents, "max_agents must be >= n_agents")
        need(isinstance(self.max_days, int) and self.max_days >= 1, "max_days must be an int >= 1")
        need(self.residents_per_factory > 0,
             f"residents_per_factory must be > 0, got {self.residents_per_factory!r}")
        need(isinstance(self.n_factories, int) and self.n_factories >= 1,
             f"n_factories must be an int >= 1 (or None: derived from n_agents), got "
             f"{self.n_factories!r}")
        need(isinstance(self.factory_slots, int) and self.factory_slots >= 1,
             f"factory_slots must be an int >= 1, got {self.factory_slots!r}")
        need(0 <= self.known_at_start <= self.n_factories,
             "known_at_start must be in [0, n_factories]")
        need(self.view_size >= 1, "view_size must be >= 1")
        need(self.max_messages >= 0, "max_messages must be >= 0")
        need(self.max_message_chars >= 1, "max_message_chars must be >= 1")
        need(self.max_text_chars >= 200, "max_text_chars must be >= 200")
        need(len(self.gift_levels) >= 1 and all(0 < g <= 1 for g in self.gift_levels),
             "gift_levels must be fractions in (0, 1]")
        for name in ("start_wealth", "start_skill", "capacity_range"):
            lo, hi = getattr(self, name)
            need(lo <= hi, f"{name} must be (low, high) with low <= high")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            need(all(math.isfinite(x) for x in numbers if _is_number(x)),
                 f"{f.name} must be finite, got {value!r}")
        for name in ("outage_prob", "explore_reveal_prob", "explore_find_prob", "birth_prob",
                     "loot_fraction", "ally_defence", "idle_upkeep_factor"):
            need(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1]")
        for name in ("production_k", "production_noise", "explore_find_max", "upgrade_cost",
                     "skill_gain", "capacity_gain", "upkeep", "upkeep_noise", "birth_threshold",
                     "birth_cost", "newcomer_wealth", "attack_wealth_weight",
                     "attack_wealth_cap", "fight_cost", "failed_attack_cost", "inbox_size",
                     "stress_upkeep", "stress_outage", "shock_upkeep", "stress_day",
                     "shock_day"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("merge_window", "recent_days", "deception_window"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)!r}")
        self._refuse_degenerate(need)

    def _refuse_degenerate(self, need: Any) -> None:
        """Worlds whose rules' formulas break down (README "Rules"): refused by name."""
        # Strength S = skill + w * min(max(wealth, 0), cap) is 0 for a resident of skill 0
        # without wealth (wealth 0 is reached: a gift of everything, an attack), and an
        # attack between two such residents divides 0 by 0 (p = S_att / (S_att + S_def));
        # skill never falls below its start, so a low end above 0 keeps S > 0.
        need(self.start_skill[0] > 0,
             f"start_skill must be above 0 at its low end, got {list(self.start_skill)}: "
             f"strength = skill + attack_wealth_weight ({self.attack_wealth_weight:g}) * "
             f"min(wealth, attack_wealth_cap ({self.attack_wealth_cap:g})) is then 0 for a "
             "resident without wealth, and an attack between two such residents divides by "
             "zero (S_att / (S_att + S_def))")
        # Y(n) = C (s(n) - s(0)) / (1 - s(0)) with s(0) = 1 / (1 + exp(k n_half)): 1 - s(0)
        # is at least 1/2 for n_half >= 0, and rounds to 0 for k n_half far below 0.
        need(self.production_n_half >= 0,
             f"production_n_half must be >= 0 (a number of workers), got "
             f"{self.production_n_half!r}: the output C (s(n) - s(0)) / (1 - s(0)) divides by "
             f"1 - s(0), which is 0 when production_k * production_n_half is far below 0")
        need(self.capacity_range[0] >= 0,
             f"capacity_range must be >= 0 (units a day), got {list(self.capacity_range)}: a "
             "factory of negative capacity takes wealth from its workers")
        # Lognormal noise exp(sigma z): beyond sigma ~ 700 / |z| it overflows to inf, and
        # inf - inf makes wealth NaN (a resident who never dies); at most MAX_LOG_SIGMA a
        # standard normal draw never gets there.
        for name in ("production_noise", "upkeep_noise"):
            need(getattr(self, name) <= MAX_LOG_SIGMA,
                 f"{name} must be <= {MAX_LOG_SIGMA:g} (the sigma of a lognormal), got "
                 f"{getattr(self, name)!r}: exp(sigma z) overflows to inf")
        need(0.0 <= self.prevalence <= 1.0,
             f"prevalence must be in [0, 1], got {self.prevalence}")
        need(self.obs_mode in OBS_MODES,
             f"obs_mode must be one of {OBS_MODES}, got {self.obs_mode!r}")
        need(self.briefing in BRIEFINGS,
             f"briefing must be one of {BRIEFINGS}, got {self.briefing!r}")
        need(self.reward in REWARD_MODES,
             f"reward must be one of {REWARD_MODES}, got {self.reward!r}")
        need(self.render_mode in (None, "ansi", "human"),
             f"render_mode must be None, 'ansi' or 'human', got {self.render_mode!r}")
        ValueCondition.parse(self.condition)  # raises a ValueError naming the bad value

    @property
    def factory_slot_count(self) -> int:
        """S, the factory slots of the features and actions: ``min(n_factories,
        factory_slots)``."""
        return min(self.n_factories, self.factory_slots)

    @property
    def ranks_factories(self) -> bool:
        """The factory slots hold each resident's known factories by capacity (more factories
        than slots), rather than slot m being factory m."""
        return self.n_factories > self.factory_slots

    @property
    def value_condition(self) -> ValueCondition:
        """The parsed value condition (parsed once per condition string: a fresh world
        asks for it)."""
        return _parse_condition(self.condition)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Config:
        """Build a config from keyword arguments, naming any unknown one."""
        known = {f.name for f in dataclasses.fields(cls)}
        clean = {}
        for key, value in kwargs.items():
            key = ALIASES.get(key, key)
            if key not in known:
                close = sorted(k for k in known if k[:3] == key[:3])
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"unknown config field {key!r}{hint}")
            clean[key] = value
        return cls(**clean)

    def replace(self, **kwargs: Any) -> Config:
        """A copy with some fields changed (aliases accepted)."""
        changes = {ALIASES.get(k, k): v for k, v in kwargs.items()}
        merged = self.to_dict()
        # A pool size and a factory count that were derived from n_agents follow a new
        # n_agents (or a new residents_per_factory).
        if ("n_agents" in changes and "max_agents" not in changes
                and self.max_agents == 4 * self.n_agents):
            merged["max_agents"] = None
        if (({"n_agents", "residents_per_factory"} & changes.keys())
                and "n_factories" not in changes
                and self.n_factories == default_factories(self.n_agents,
                                                          self.residents_per_factory)):
            merged["n_factories"] = None
        merged.update(changes)
        return Config.from_kwargs(**merged)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Inverse of ``to_dict``; unknown keys are an error that names them.

        A config written before factory slots (``n_factories`` without ``factory_slots``)
        gets ``factory_slots = max(8, n_factories)``, so that slot m is factory m as it was
        then and the run it describes plays again the same.
        """
        if not isinstance(data, dict):
            raise ValueError(f"config must be a JSON object, got {type(data).__name__}")
        if ("n_factories" in data and "factory_slots" not in data
                and isinstance(data["n_factories"], int)
                and not isinstance(data["n_factories"], bool)):
            data = {**data, "factory_slots": max(cls.factory_slots, data["n_factories"])}
        return cls.from_kwargs(**data)

    def to_json(self) -> str:
        """The config as indented JSON (what ``config.json`` holds)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: str) -> Config:
        """Read a ``config.json``; a broken file gives an error naming the file."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        except OSError as err:
            raise ValueError(f"{path}: cannot read the config ({err.strerror or err})") from None
        try:
            return cls.from_dict(data.get("env", data) if isinstance(data, dict) else data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: {err}") from None


def default_factories(n_agents: int, residents_per_factory: float = 5.0) -> int:
    """The derived factory count: ``max(MIN_FACTORIES, round(n_agents /
    residents_per_factory))`` (5 at the default 25 founders, 200 at 1,000)."""
    return max(MIN_FACTORIES, round(n_agents / residents_per_factory))


def check_prevalence(value: Any) -> float:
    """``value`` as a prevalence, checked by ``Config``'s own validation (the one check).

    For callers that hold prevalences before they build a config (a sweep's grid, checked
    before any run starts). Raises ``Config``'s ValueError naming the field.
    """
    return Config(prevalence=value).prevalence
