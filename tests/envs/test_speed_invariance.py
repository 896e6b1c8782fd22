"""Speed work must not change a run: seeded episodes give byte-identical observations,
rewards, event logs and summaries to those recorded before the optimisations.

A deliberate change of the rules, observations or random draws changes them too: record
them again on purpose, and say why in the commit. Last recorded when the slot channel
``slot.friendly_to_me`` was added (what each view slot's resident said to the listener): the
world, texts, logs, summaries and the other features are unchanged; with its columns removed
the features give the digests recorded before it, when the own channels ``upkeep`` and
``outage_prob`` were added (the stress fields; with those removed too, version 2's random
streams: one per purpose, fixed daily draws, paired worlds).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import simd_pin

import civa_env
from civa_env.policies import make_policy
from civa_env.policies.batch import Batch

# (founders, policy, seed, obs_mode, n_factories: 0 = derived from the founders) -> digest.
# The 100-founder episodes with 5 factories are those recorded before factories grew with
# the community; the derived ones (20 factories, 8 ranked factory slots) were recorded when
# the slots came. Three were recorded again when an empty view slot's slot.wealth became
# +0.0 (it was rel * present, a zero that took the sign of pool row 0's wealth): the same
# episodes, every feature equal, as the digests over features + 0.0 of both versions show.
GOLDEN = {
    (25, "scripted", 1, "text", 0):
        "ad096deb360bec7bbe8992678c015f837e52191976f6f705a0fffda1c016d3a2",
    (100, "scripted", 2, "numeric", 5):
        "e3f3c0fe7da108d92dd817101b53371a7678ba58843f2864b2fd067f1c44a48d",
    (100, "random", 3, "numeric", 5):
        "407360ed529fd41fd4c733571e5b575a23fea6ebf0690698d2c20ce7bb4dbe46",
    (100, "scripted", 2, "numeric", 0):
        "f0eec0275699a59af370140cd782f972e25b2b7092d8d971e7a1b826a484da8c",
    (100, "random", 3, "numeric", 0):
        "088d4aa0139530c4599a74159b4bca85af955f5359309aea58265dc100d39243",
    (60, "scripted", 1, "text", 0):
        "5a4a6a1235ebb857b958d6b0d388cac539c5d7aed7f2b6b2295da4278fa920f3",
}


def episode_digest(n: int, policy: str, seed: int, obs_mode: str, *, text_only: bool = False,
                   **config) -> str:
    """sha256 over every step's observations and rewards, then the JSONL log and summary
    (``text_only``: over the briefings alone)."""
    env = civa_env.parallel_env(n_agents=n, obs_mode=obs_mode, seed=seed, **config)
    pol = make_policy(policy, seed=seed)
    pol.reset(env.cfg, seed=seed)
    obs, infos = env.reset(seed=seed)
    h = hashlib.sha256()
    while env.agents:
        live = {a: obs[a] for a in env.agents}
        obs, rewards, _, _, infos = env.step(pol.act(Batch.from_observations(live, infos)))
        for a in sorted(obs):
            if text_only:
                h.update(obs[a]["text"].encode())
                continue
            h.update(obs[a]["text"].encode() + obs[a]["features"].tobytes()
                     + obs[a]["action_mask"].tobytes() + repr(rewards.get(a)).encode())
    if text_only:
        return h.hexdigest()
    buf = io.StringIO()
    for i in range(env.log.n_days):
        env.log.write_day(buf, i)
    h.update(buf.getvalue().encode())
    h.update(json.dumps(env.summary(), sort_keys=True).encode())
    return h.hexdigest()


def pinned_digest(*args, **config) -> str:
    """``episode_digest`` computed with numpy's X86_V3 kernels (in a subprocess when this
    one uses others), so that the recorded digests hold on any x86-64-v3 machine."""
    pin = simd_pin()
    if pin is None:
        pytest.skip("the digests were recorded with numpy's X86_V3 (AVX2) kernels")
    if not pin:
        return episode_digest(*args, **config)
    # (this module imports conftest, which sits in tests/, beside this folder)
    here = Path(__file__).parent
    code = ("import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; "
            "from test_speed_invariance import episode_digest; "
            "a = json.loads(sys.argv[3]); print(episode_digest(*a[0], **a[1]))")
    out = subprocess.run([sys.executable, "-c", code, str(here), str(here.parent),
                          json.dumps([args, config])], capture_output=True, text=True,
                         env={**os.environ, "NPY_DISABLE_CPU_FEATURES": pin}, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("args", sorted(GOLDEN))
def test_seeded_episode_is_unchanged(args: tuple) -> None:
    *episode, factories = args
    assert pinned_digest(*episode, **({"n_factories": factories} if factories else {})) \
        == GOLDEN[args]


def test_briefing_v1_gives_the_recorded_digest():
    """The text episode with briefing v1 (recorded again with the feature channel
    ``slot.friendly_to_me``, before it with ``upkeep`` and ``outage_prob``; before them it
    gave the digest recorded before briefing v2)."""
    digest = "87df94ea6038530897aed8ff9de1a18168c2dbb85c44204b8d3b8cfc3cc858d5"
    assert pinned_digest(25, "scripted", 1, "text", briefing="v1") == digest


@pytest.mark.parametrize("briefing,digest", [
    ("v1", "c1ea53f2e1c73d2126229c2646b0ddf1bc228de6c5680556ae679d1de984fe6b"),
    ("v2", "a265cc76e4747198053a279e052ef39be231781bc1c8837ce0225525d6e8cc82"),
])
def test_briefing_texts_are_unchanged(briefing, digest):
    """The briefings alone, byte for byte: v1's as before briefing v2; v2's recorded when
    the orders came from one key matrix a day (perception.ShownOrder)."""
    assert pinned_digest(25, "scripted", 1, "text", text_only=True,
                         briefing=briefing) == digest
