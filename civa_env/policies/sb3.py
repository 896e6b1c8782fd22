"""Residents driven by a trained stable-baselines3 policy (PPO or sb3-contrib MaskablePPO).

``make_policy("ppo:<checkpoint>")`` (the CLI's ``--policy ppo:<checkpoint>``) loads a
checkpoint written by ``save_checkpoint`` (``baselines/train_ppo.py`` writes them): the SB3
zip plus ``civa.json`` inside it (and a copy beside it, ``<name>.civa.json``) recording
the algorithm and the world's shape (``config.SHAPE_FIELDS``, feature size, catalogue
size).

All the residents a policy controls decide in **one forward pass** a day: features are
stacked into a batch, the network gives the logits, invalid actions are masked out (for
plain PPO as well) and an action is sampled from the masked distribution (seeded), or the
best one is taken with ``deterministic``. A checkpoint trained on factored actions
(``"action_mode": "factored"`` in its metadata; ``CivaVecEnv(action_mode="factored")``)
samples each component from its own masked logits (the component masks read off the flat
masks, ``factored.masks_from_flat``) and sends its cheap-talk messages.

Loading checks only what the network depends on (``NETWORK_FIELDS``: the factory slots,
``view_size``, ``gift_levels``, hence the feature and catalogue sizes), so a checkpoint runs
in a community of another size (``--agents``) or with other text limits; one trained where
the slots rank the known factories (more factories than ``factory_slots``) runs in a world
of any number of factories above the slots; a different pool
size or text limit is only logged. ``@strict`` requires every recorded shape field
(``config.SHAPE_FIELDS``) to match as well.

Spec arguments: ``ppo:<path>``, ``ppo:<path>@deterministic``, ``ppo:<path>@strict``
(``@nonstrict`` is accepted and means the default); options are joined with ``@`` because
``,`` separates the policies of a mix (``--policy ppo:model.zip=0.5,scripted=0.5``). torch
and SB3 are imported only when a policy is built.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from civa_env.policies.base import Policy, register_policy
from civa_env.policies.batch import Batch
from civa_env.world.config import Config
from civa_env.world.day import NETWORK_FIELDS

CHECKPOINT_FORMAT = "civa-sb3/1"
META_NAME = "civa.json"
ALGOS = ("MaskablePPO", "PPO")
# A mismatch in NETWORK_FIELDS (what the network depends on) is an error; the other recorded
# fields (pool size, text limits) only matter with ``@strict``.

log = logging.getLogger(__name__)


class CheckpointMismatch(ValueError):
    """A checkpoint's world shape differs from the world it is asked to act in."""


def checkpoint_path(path: str | Path) -> Path:
    """The zip of a checkpoint given as the zip, its stem, or a folder holding ``model.zip``."""
    p = Path(path).expanduser()
    if p.is_dir():
        candidates = [p / "model.zip", p / "final.zip"]
        for c in candidates:
            if c.exists():
                return c
        raise FileNotFoundError(f"{p} is a folder without model.zip; pass the checkpoint zip")
    if p.suffix != ".zip" and not p.exists() and p.with_suffix(".zip").exists():
        return p.with_suffix(".zip")
    if not p.exists():
        raise FileNotFoundError(f"checkpoint {p} not found (train one with baselines/train_ppo.py)")
    return p


def save_checkpoint(model: Any, path: str | Path, cfg: Config,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Save an SB3 model with its CIVA metadata (inside the zip and beside it).

    Args:
        model: a trained ``PPO`` or ``MaskablePPO``.
        path: where to write the zip (``.zip`` is added if missing).
        cfg: the config of the world it was trained in.
        extra: more to record (training arguments, steps).
    """
    from civa_env.world.day import shape_signature

    algo = type(model).__name__
    if algo not in ALGOS:
        raise ValueError(f"can only save {ALGOS}, got {algo}")
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_suffix(".zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    factored_space = type(model.action_space).__name__ == "MultiDiscrete"
    meta = {"format": CHECKPOINT_FORMAT, "algo": algo, "shape": shape_signature(cfg),
            "action_mode": "factored" if factored_space else "flat",
            "config": cfg.to_dict(), **(dict(extra) if extra else {})}
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(META_NAME, text)
    path.with_suffix(".civa.json").write_text(text + "\n", encoding="utf-8")
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The CIVA metadata of a checkpoint (from the zip, else the sidecar JSON)."""
    zpath = checkpoint_path(path)
    try:
        with zipfile.ZipFile(zpath) as zf:
            if META_NAME in zf.namelist():
                return json.loads(zf.read(META_NAME))
    except zipfile.BadZipFile:
        raise ValueError(f"{zpath} is not a stable-baselines3 zip checkpoint") from None
    side = zpath.with_suffix(".civa.json")
    if side.exists():
        return json.loads(side.read_text(encoding="utf-8"))
    raise ValueError(f"{zpath} has no CIVA metadata ({META_NAME}); save checkpoints with "
                     "civa_env.policies.sb3.save_checkpoint so their world shape is recorded")


def check_shape(meta: Mapping[str, Any], cfg: Config, *, strict: bool = False,
                source: str = "checkpoint") -> None:
    """Raise ``CheckpointMismatch`` naming each field where ``meta`` and ``cfg`` differ.

    By default only ``NETWORK_FIELDS`` must agree; other differences (pool size, text
    limits) are logged. With ``strict=True`` every recorded shape field must agree.
    """
    from civa_env.world.day import shape_signature

    trained = dict(meta.get("shape", {}))
    if "factory_slot_count" not in trained and "n_factories" in trained:
        # Recorded before factory slots: slot m was factory m, one slot per factory (what
        # factory_slots = max(8, n_factories) gives).
        trained["factory_slot_count"] = trained["n_factories"]
        trained["ranks_factories"] = False
        trained["factory_slots"] = max(Config.factory_slots, trained["n_factories"])
    here = shape_signature(cfg)
    diffs = [(k, trained.get(k), v) for k, v in here.items() if trained.get(k) != v]
    fatal = diffs if strict else [d for d in diffs if d[0] in NETWORK_FIELDS]
    if fatal:
        lines = "; ".join(f"{k}: trained with {a}, this world has {b}" for k, a, b in fatal)
        hint = ""
        if {"factory_slot_count", "ranks_factories"} & {d[0] for d in fatal} and \
                not trained.get("ranks_factories") and "n_factories" in trained:
            m = trained["n_factories"]
            if m == cfg.n_factories:  # (trained with one slot per factory, beyond 8)
                hint = (f" (it was trained with one slot for each of its {m} factories: set "
                        f"factory_slots={m}, in the CLI --set factory_slots={m})")
            else:
                hint = (f" (it was trained with {m} factories: set n_factories={m}, in the "
                        f"CLI --set n_factories={m}, to keep them in a larger community)")
        raise CheckpointMismatch(
            f"{source} does not fit this world ({lines}). Run it in a world with the same "
            + ("settings" if strict else "factory slots, view_size and gift_levels")
            + hint + ", or train a policy for this one with baselines/train_ppo.py"
            + (" (or drop @strict if only the pool size or text limits differ)." if strict
               else "."))
    if diffs:
        log.info("%s: fields the network does not depend on differ (%s); accepted",
                 source, ", ".join(f"{k} {a} -> {b}" for k, a, b in diffs))


class SB3Policy(Policy):
    """A trained SB3 policy acting for a batch of residents (one forward pass per ``act``).

    Args:
        checkpoint: the zip (or its folder / stem); ``@deterministic`` and ``@strict``
            may follow it in the spec string.
        deterministic: take the most likely valid action instead of sampling.
        strict: require every recorded shape field to match, not only the network's
            (see ``check_shape``).
        seed: seeds the sampling.
        device: torch device (default ``cpu``).
    """

    name = "ppo"

    def __init__(self, checkpoint: str, *, deterministic: bool | None = None,
                 strict: bool | None = None, seed: int | None = None,
                 device: str = "cpu") -> None:
        path, *options = str(checkpoint).split("@")
        unknown = set(options) - {"deterministic", "stochastic", "strict", "nonstrict", ""}
        if unknown:
            raise ValueError(f"unknown ppo option(s) {sorted(unknown)}; "
                             "use ppo:<checkpoint>[@deterministic][@strict]")
        if deterministic is None:
            deterministic = "deterministic" in options
        self.deterministic = deterministic
        self.strict = ("strict" in options) if strict is None else strict
        self.path = checkpoint_path(path)
        self.meta = read_metadata(self.path)
        if self.meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{self.path}: unknown checkpoint format {self.meta.get('format')!r}")
        self.algo = self.meta["algo"]
        self.device = device
        self.rng = np.random.default_rng(seed)
        self._model: Any = None
        self.cfg: Config | None = None

    # Loading is deferred to the first use, so building the policy stays cheap.
    @property
    def model(self) -> Any:
        """The SB3 model (loaded on first use)."""
        if self._model is None:
            if self.algo == "MaskablePPO":
                from sb3_contrib import MaskablePPO as algo_cls
            else:
                from stable_baselines3 import PPO as algo_cls
            self._model = algo_cls.load(self.path, device=self.device)
        return self._model

    def reset(self, cfg: Config, seed: int | None = None) -> None:
        """Check the world's shape against the checkpoint; reseed the sampling."""
        check_shape(self.meta, cfg, strict=self.strict, source=f"checkpoint {self.path}")
        self.cfg = cfg
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        _ = self.model

    def act(self, batch: Batch) -> dict[Hashable, Any]:
        """One flat action per key, from one batched forward pass."""
        keys = batch.keys
        if not keys:
            return {}
        feats, masks = batch.features, batch.masks
        shape = self.meta["shape"]
        if feats.shape[1] != shape["feature_size"] or masks.shape[1] != shape["catalogue_size"]:
            raise CheckpointMismatch(
                f"checkpoint {self.path} expects {shape['feature_size']} features and "
                f"{shape['catalogue_size']} actions; the observations have {feats.shape[1]} "
                f"features and {masks.shape[1]} actions (different factory slots / view_size "
                "/ gift_levels)")
        logits = self.logits(feats)
        if self.meta.get("action_mode") == "factored":
            from civa_env.world import factored
            from civa_env.world.catalogue import Catalogue

            cfg = self.cfg if self.cfg is not None else Config.from_kwargs(
                **self.meta.get("config", {}))
            comp = factored.masks_from_flat(masks, cfg, Catalogue(cfg)).astype(bool)
            o = factored.FactoredSpec.of(cfg).offsets
            rows = np.stack([self._choose(logits[:, o[c]:o[c + 1]], comp[:, o[c]:o[c + 1]])
                             for c in range(factored.N_COMPONENTS)], axis=1)
            return dict(zip(keys, rows, strict=True))
        choice = self._choose(logits, masks.astype(bool))
        return dict(zip(keys, choice.tolist(), strict=True))

    def _choose(self, logits: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """(K,) the most likely valid choice, or (default) a seeded sample from the masked
        softmax (Gumbel-max); 0 for a row with no valid choice (never happens: a "nothing"
        choice is always valid)."""
        logits = np.where(masks, logits, -np.inf)
        if self.deterministic:
            choice = logits.argmax(axis=1)
        else:
            gumbel = -np.log(-np.log(self.rng.random(logits.shape) + 1e-300) + 1e-300)
            choice = (logits + gumbel).argmax(axis=1)
        return np.where(masks.any(axis=1), choice, 0)

    def logits(self, feats: np.ndarray) -> np.ndarray:
        """(K, A) action logits of a batch of feature vectors (one forward pass); for a
        factored checkpoint the components' logits side by side (K, sum of nvec)."""
        import torch

        policy = self.model.policy
        with torch.no_grad():
            obs = torch.as_tensor(feats, device=policy.device)
            dist = policy.get_distribution(obs)
            # MultiDiscrete: one Categorical per component (``distributions`` in
            # sb3-contrib's masked distribution, ``distribution`` a list in SB3's).
            parts = getattr(dist, "distributions", None) or dist.distribution
            if isinstance(parts, list):
                return np.concatenate([d.logits.cpu().numpy() for d in parts], axis=1).astype(
                    np.float64)
            return parts.logits.cpu().numpy().astype(np.float64)

    def describe(self) -> dict[str, Any]:
        """Checkpoint, algorithm and how actions are chosen."""
        return {"name": self.name, "checkpoint": str(self.path), "algo": self.algo,
                "deterministic": self.deterministic, "strict": self.strict,
                "trained": {k: self.meta.get(k) for k in ("condition", "reward", "timesteps")
                            if k in self.meta}}


register_policy("ppo", SB3Policy)
