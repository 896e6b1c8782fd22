"""A fixed 2-D layout of every resident of a run, so the graph does not jump between days.

Residents of one value condition start on a sunflower disc of their own (discs side by side),
then a few rounds of a spring layout pull together those who were allied, exchanged gifts,
or are parent and child. Repulsion is estimated against a random sample of other residents
each round, so a round costs O(N x samples), not O(N^2): 3000 residents lay out in well
under a second. The random draws are seeded, so a page is reproducible.
"""

from __future__ import annotations

import numpy as np

GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))


def sunflower(n: int) -> np.ndarray:
    """(n, 2) points filling the unit disc evenly."""
    k = np.arange(n) + 0.5
    r = np.sqrt(k / max(n, 1))
    return np.stack([r * np.cos(k * GOLDEN_ANGLE), r * np.sin(k * GOLDEN_ANGLE)], axis=1)


def initial_positions(groups: np.ndarray) -> np.ndarray:
    """Each group on its own disc, discs on a circle, disc area proportional to group size."""
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    pos = np.zeros((len(groups), 2))
    n_groups = len(labels)
    ring = 0.0 if n_groups == 1 else 1.2
    for g in range(n_groups):
        members = np.flatnonzero(inverse == g)
        radius = np.sqrt(counts[g] / counts.max())
        angle = 2 * np.pi * g / n_groups
        centre = ring * np.array([np.cos(angle), np.sin(angle)])
        pos[members] = centre + radius * sunflower(len(members))
    return pos


def merge_edges(n: int, src: np.ndarray, dst: np.ndarray,
                weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One undirected edge per pair, weights summed then capped (ten gifts are not ten
    times the pull of one alliance)."""
    a = np.minimum(src, dst).astype(np.int64)
    b = np.maximum(src, dst).astype(np.int64)
    keep = a != b
    keys, inverse = np.unique(a[keep] * n + b[keep], return_inverse=True)
    total = np.bincount(inverse, np.asarray(weight, float)[keep], minlength=len(keys))
    return keys // n, keys % n, np.minimum(total, 4.0)


def equalise_density(pos: np.ndarray) -> np.ndarray:
    """Move residents along their rays from the centre so that the disc fills evenly.

    A spring layout of a large community packs the busy residents into a dense core and
    leaves a sparse halo; replacing each radius by sqrt(rank / n) keeps every resident's
    direction and its order outwards, and gives each the same room.
    """
    centre = np.median(pos, axis=0)
    delta = pos - centre
    radius = np.sqrt((delta ** 2).sum(-1))
    angle = np.arctan2(delta[:, 1], delta[:, 0])
    rank = np.empty(len(pos))
    rank[np.argsort(radius, kind="stable")] = np.arange(len(pos))
    r = np.sqrt((rank + 0.5) / len(pos))
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)


def spring_layout(groups: np.ndarray, src: np.ndarray, dst: np.ndarray, weight: np.ndarray,
                  *, rounds: int = 60, samples: int = 48, seed: int = 0) -> np.ndarray:
    """(N, 2) float positions in [0, 1] x [0, 1] (each axis scaled to fill it).

    Args:
        groups: (N,) group label (value condition) per resident.
        src, dst, weight: (E,) attracting edges and their strength.
        rounds: iterations of the spring model.
        samples: residents each resident is repelled by, per round.
        seed: seed of the sampling.
    """
    n = len(groups)
    if n == 0:
        return np.zeros((0, 2))
    rng = np.random.default_rng(seed)
    src, dst, weight = merge_edges(n, src, dst, weight)
    pos = initial_positions(groups)
    anchor = pos.copy()
    ideal = 1.0 / np.sqrt(max(n, 1))  # spacing of n points on a unit disc
    step = 0.1
    for _ in range(rounds if n > 1 else 0):
        force = np.zeros_like(pos)
        # Repulsion from a random sample (scaled to stand for all n - 1 others).
        other = rng.integers(0, n, size=(n, samples))
        delta = pos[:, None, :] - pos[other]  # (n, s, 2)
        dist2 = (delta ** 2).sum(-1) + 1e-4 * ideal ** 2
        force += ((ideal ** 2 / dist2)[..., None] * delta).sum(1) * (n / samples) * 0.02
        # Attraction along edges.
        if len(src):
            d = pos[dst] - pos[src]
            length = np.sqrt((d ** 2).sum(-1)) + 1e-9
            pull = (weight * length / ideal)[:, None] * d * 0.05
            for axis in (0, 1):
                force[:, axis] += np.bincount(src, pull[:, axis], minlength=n)
                force[:, axis] -= np.bincount(dst, pull[:, axis], minlength=n)
        # A weak tie to the group's disc keeps conditions apart.
        force += (anchor - pos) * 0.5
        norm = np.sqrt((force ** 2).sum(-1, keepdims=True)) + 1e-12
        pos += force / norm * np.minimum(norm, step)
        step *= 0.96
    if n >= 200:
        pos = equalise_density(pos)
    # Each axis scaled to fill the canvas; the few residents a sampled repulsion flung far
    # out are clipped to the border instead of squeezing everyone else into the middle.
    lo, hi = np.percentile(pos, [0.5, 99.5], axis=0) if n >= 200 else (pos.min(0), pos.max(0))
    span = np.maximum(hi - lo, 1e-9)
    return np.clip((pos - lo) / span, 0.0, 1.0)
