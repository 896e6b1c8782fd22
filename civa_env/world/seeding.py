"""Many numpy seed sequences at once: the generators of fresh worlds and derived seeds.

A batch restarts a few communities every step, and each fresh world needs three streams
(``day.first_days``) and its next seed (``day.derived_seed``). numpy makes each from a
``SeedSequence``, some 30 us of Python-level hashing per generator. Here the hashing is one
compiled pass for all of them (``kernels.seed_sequence_states``, numpy's uint32 arithmetic):
``seed_words`` gives the words PCG64 is seeded with (the world and values streams are drawn
from them directly, ``state.seeded_states``), and ``generators_of`` / ``generators`` seed
numpy generators from them: the same generators, draw for draw (tests compare them with
numpy's for thousands of seeds), at a tenth of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.random.bit_generator import ISpawnableSeedSequence

_POOL = 4  # SeedSequence's pool size (32-bit words)
_MASK32 = 0xFFFFFFFF


def _words(x: int) -> list[int]:
    """The 32-bit words of ``x`` >= 0, least significant first ([0] for 0), as
    ``SeedSequence`` splits an int."""
    x = int(x)
    if 0 <= x <= _MASK32:
        return [x]
    if x < 0:
        raise ValueError(f"seed sequence entropy must be >= 0, got {x}")
    out = []
    while x:
        out.append(x & _MASK32)
        x >>= 32
    return out


def _assembled(entropy: int | Sequence[int], spawn_key: Sequence[int]) -> list[int]:
    """``SeedSequence(entropy, spawn_key=spawn_key).get_assembled_entropy()``, as ints."""
    if isinstance(entropy, (int, np.integer)):
        run = _words(entropy)
    else:
        run = [w for e in entropy for w in _words(e)]
    if spawn_key:
        spawn = [w for k in spawn_key for w in _words(k)]
        if len(run) < _POOL:
            run += [0] * (_POOL - len(run))
        run += spawn
    return run


def _int_entropy(entropies: Sequence[Any], spawn_keys: Sequence[Sequence[int]]
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """``states``' assembled entropy table, in a few array operations, where every entropy
    is an int in [0, 2**64) and every spawn key one int in [0, 2**32) (how fresh worlds'
    generators are made); None otherwise (``_assembled``, row by row, then)."""
    if not entropies or len(entropies) != len(spawn_keys) or not all(
            type(e) is int and 0 <= e < 1 << 64 for e in entropies) or not all(
            len(k) == 1 and type(k[0]) is int and 0 <= k[0] <= _MASK32 for k in spawn_keys):
        return None
    x = np.array(entropies, np.uint64)
    # [lo word, hi word (0 where the int has one word: the padding), 0, 0, spawn key]
    entropy = np.zeros((len(x), _POOL + 1), np.uint32)
    entropy[:, 0] = x & np.uint64(_MASK32)
    entropy[:, 1] = x >> np.uint64(32)
    entropy[:, _POOL] = [k[0] for k in spawn_keys]
    return entropy, np.full(len(x), _POOL + 1, np.int64)


def states(entropies: Sequence[int | Sequence[int]], spawn_keys: Sequence[Sequence[int]],
           n_words: int) -> np.ndarray:
    """``SeedSequence(entropies[g], spawn_key=spawn_keys[g]).generate_state(n_words,
    np.uint64)`` for every g: (G, n_words) uint64."""
    from civa_env.world.kernels import seed_sequence_states  # (numba loads on first use)

    table = _int_entropy(entropies, spawn_keys)
    if table is not None:
        entropy, n_entropy = table
    else:
        rows = [_assembled(e, k) for e, k in zip(entropies, spawn_keys, strict=True)]
        width = max([_POOL] + [len(r) for r in rows])
        entropy = np.zeros((len(rows), width), np.uint32)
        for g, r in enumerate(rows):
            entropy[g, :len(r)] = r
        n_entropy = np.array([len(r) for r in rows], np.int64)
    out = seed_sequence_states(entropy, n_entropy, 2 * n_words)
    return out.view("<u8").astype(np.uint64, copy=False)


class _Precomputed(ISpawnableSeedSequence):
    """``SeedSequence(entropy, spawn_key=spawn_key)`` whose 4-word uint64 state (what PCG64
    asks for) was computed ahead; anything else (``spawn``, ``pool``, other states, pickling)
    is asked of the real one, made on first need."""

    def __init__(self, entropy: int, spawn_key: tuple[int, ...], state: np.ndarray) -> None:
        self._entropy, self._spawn_key, self._state = entropy, spawn_key, state
        self._seq: np.random.SeedSequence | None = None

    @property
    def real(self) -> np.random.SeedSequence:
        """The numpy ``SeedSequence`` this stands for."""
        if self._seq is None:
            self._seq = np.random.SeedSequence(self._entropy, spawn_key=self._spawn_key)
        return self._seq

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> np.ndarray:
        if n_words == len(self._state) and np.dtype(dtype) == np.uint64:
            return self._state.copy()
        return self.real.generate_state(n_words, dtype)

    def spawn(self, n_children: int) -> list[np.random.SeedSequence]:
        return self.real.spawn(n_children)

    def __getattr__(self, name: str) -> Any:  # entropy, spawn_key, pool, n_children_spawned
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.real, name)

    def __reduce__(self) -> Any:
        return self.real.__reduce__()

    def __repr__(self) -> str:
        return repr(self.real)


def generators(entropies: Sequence[int], spawn_keys: Sequence[int]
               ) -> list[list[np.random.Generator]]:
    """For each key k of ``spawn_keys``, the generators
    ``np.random.default_rng(np.random.SeedSequence(x, spawn_key=(k,)))`` of every x of
    ``entropies`` (the child k of ``SeedSequence(x)``): one list per key."""
    words = seed_words(entropies, spawn_keys)
    return [generators_of(entropies, k, w) for k, w in zip(spawn_keys, words, strict=True)]


def seed_words(entropies: Sequence[int], spawn_keys: Sequence[int]) -> np.ndarray:
    """(K, G, 4) uint64: ``SeedSequence(x, spawn_key=(k,)).generate_state(4, np.uint64)``
    (what PCG64 is seeded with) for each key k of ``spawn_keys`` and x of ``entropies``."""
    keys = [(int(k),) for k in spawn_keys]
    xs = [int(x) for x in entropies]
    table = states([x for _ in keys for x in xs], [k for k in keys for _ in xs], 4)
    return table.reshape(len(keys), len(xs), 4)


def generators_of(entropies: Sequence[int], spawn_key: int, words: np.ndarray
                  ) -> list[np.random.Generator]:
    """The generators ``np.random.default_rng(np.random.SeedSequence(x,
    spawn_key=(spawn_key,)))`` of every x of ``entropies``, seeded from their ``words``
    (G, 4) (``seed_words``)."""
    key = (int(spawn_key),)
    return [np.random.Generator(np.random.PCG64(_Precomputed(int(x), key, w)))
            for x, w in zip(entropies, words, strict=True)]


def derived_seeds(entropies: Sequence[Sequence[int]]) -> list[int]:
    """``day.derived_seed(seed, *keys)`` of each ``(seed, *keys)`` of ``entropies``:
    ``SeedSequence([seed, *keys]).generate_state(2, np.uint64)[0] % 2**63``."""
    table = states([[int(x) for x in e] for e in entropies], [()] * len(entropies), 2)
    return [int(x) % 2**63 for x in table[:, 0]]


def episode_seeds(seeds: Sequence[int], episodes: Sequence[int], spawn_keys: Sequence[int]
                  ) -> tuple[list[int], np.ndarray]:
    """The seeds of episodes ``episodes[g]`` of ``seeds[g]`` (``derived_seeds`` of the
    pairs) and ``seed_words(those, spawn_keys)`` (K, G, 4), in one compiled pass where the
    seeds are below 2**64 and the episodes and keys below 2**32 (else the two calls)."""
    from civa_env.world.kernels import episode_seed_words  # (numba loads on first use)

    if seeds and max(seeds) <= (1 << 64) - 1 and min(seeds) >= 0 and min(episodes) >= 0 \
            and max(episodes) <= _MASK32 and min(spawn_keys) >= 0 \
            and max(spawn_keys) <= _MASK32:
        derived, words = episode_seed_words(np.array(seeds, np.uint64),
                                            np.array(episodes, np.uint64),
                                            np.array(spawn_keys, np.uint64))
        return derived.tolist(), words
    out = derived_seeds([(s, e) for s, e in zip(seeds, episodes, strict=True)])
    return out, seed_words(out, spawn_keys)
