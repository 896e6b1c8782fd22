"""Factored actions: the flat catalogue as one encoding, component masks, cheap talk."""

from __future__ import annotations

import io

import numpy as np
import pytest

from civa_env import world
from civa_env.world import factored
from civa_env.world.behaviours import KeywordIntentClassifier
from civa_env.world.catalogue import Catalogue
from civa_env.world.config import Config
from civa_env.world.events import agent_name
from civa_env.world.kinds import K, S

CFG = Config(n_agents=12, max_days=25, obs_mode="numeric")


def log_text(w: world.World) -> str:
    out = io.StringIO()
    for d in range(w.log.n_days):
        w.log.write_day(out, d)
    return out.getvalue()


def test_flat_ids_round_trip_through_the_factored_form():
    cat = Catalogue(CFG)
    ids = np.arange(cat.size)
    acts = factored.from_flat(ids, CFG, cat)
    assert acts.shape == (cat.size, factored.N_COMPONENTS)
    assert (acts < factored.FactoredSpec.of(CFG).nvec).all() and (acts >= 0).all()
    np.testing.assert_array_equal(factored.to_flat(acts, CFG, cat), ids)


def test_spec_sizes_follow_the_config():
    spec = factored.FactoredSpec.of(CFG)
    m, v = CFG.n_factories, CFG.view_size
    assert spec.nvec.tolist() == [2 * m + 3, 4, v, len(CFG.gift_levels), 7, v + 1]
    assert spec.mask_size == int(spec.nvec.sum())


def play_flat_and_factored(seed: int) -> tuple[str, str]:
    """The same random valid flat choices played through world.step (flat ids) and
    world.step_factored (their factored rows): the two logs."""
    wa, wb = world.reset(CFG, seed), world.reset(CFG, seed)
    rng = np.random.default_rng(seed)
    while not wa.done:
        seen = wa.observe(wa.living, text=False)
        s = np.where(seen.masks > 0, rng.random(seen.masks.shape), -1.0)
        ids = s.argmax(axis=1)
        wa, _ = world.step(wa, {agent_name(i): int(a) for i, a in zip(seen.rows, ids, strict=True)})
        acts = np.zeros((wb.state.n_pool, factored.N_COMPONENTS), np.int64)
        acts[seen.rows] = factored.from_flat(ids, CFG, wb.catalogue)
        wb, _ = world.step_factored(wb, acts)
    assert wb.done
    return log_text(wa), log_text(wb)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_factored_plays_the_same_day_as_the_flat_ids(seed):
    a, b = play_flat_and_factored(seed)
    assert a == b and "attack" in a and "gift" in a


def test_component_masks_agree_with_the_flat_mask():
    w = world.reset(CFG, 3)
    rng = np.random.default_rng(3)
    spec = factored.FactoredSpec.of(CFG)
    o = spec.offsets
    for _ in range(8):
        rows = w.living
        flat = w.catalogue.mask(w.state, w.view, rows, CFG).astype(bool)
        comp = factored.masks(w.state, w.view, rows, CFG, w.catalogue).astype(bool)
        np.testing.assert_array_equal(
            factored.masks_from_flat(flat.view(np.int8), CFG, w.catalogue).astype(bool), comp)
        cube = flat.reshape(len(rows), w.catalogue.n_primary, w.catalogue.n_secondary)
        # primary: valid with some secondary choice (none is always valid)
        np.testing.assert_array_equal(comp[:, o[0]:o[1]], cube.any(axis=2))
        # each secondary kind: allowed when some flat choice of that kind is
        sec = cube.any(axis=1)
        for kind in (S.NONE, S.GIFT, S.ATTACK, S.MERGE):
            np.testing.assert_array_equal(comp[:, o[1] + kind],
                                          sec[:, w.catalogue.s_kind == kind].any(axis=1))
        np.testing.assert_array_equal(comp[:, o[2]:o[3]], w.view[rows] >= 0)
        assert comp[:, o[6] - 1].all()  # everyone can always be messaged
        s = np.where(flat, rng.random(flat.shape), -1.0)
        ids = s.argmax(axis=1)
        w, _ = world.step(w, {agent_name(i): int(a) for i, a in zip(rows, ids, strict=True)})


def test_out_of_range_components_are_flagged_not_raised():
    w = world.reset(CFG, 0)
    acts = np.zeros((w.state.n_pool, 6), np.int64)
    live = w.living
    acts[live[0]] = [999, 0, 0, 0, 0, 0]  # primary out of range
    acts[live[1]] = [CFG.n_factories, 9, 0, 0, 0, 0]  # explore, secondary out of range
    acts[live[2]] = [CFG.n_factories, S.ATTACK, -1, 0, 0, 0]  # target slot out of range
    acts[live[3]] = [CFG.n_factories, S.GIFT, 0, 77, 0, 0]  # amount level out of range
    acts[live[4]] = [CFG.n_factories, 0, 0, 0, 42, 0]  # message kind out of range
    acts[live[5:]] = factored.from_flat(np.full(len(live) - 5, CFG.n_factories *
                                                w.catalogue.n_secondary), CFG)
    w, day = world.step_factored(w, acts)
    for i in live[:5].tolist():
        assert day.invalid[i], i
    assert not any(day.invalid.get(i) for i in live[5:].tolist())


@pytest.mark.parametrize("bad", [np.zeros((3, 6), np.int64), np.zeros((48, 5), np.int64),
                                 np.zeros((48, 6)), np.zeros((48, 6), bool)])
def test_a_wrong_array_is_a_value_error(bad):
    w = world.reset(CFG, 0)
    before = w.state.wealth.copy()
    with pytest.raises(ValueError, match="factored actions"):
        world.step_factored(w, bad)
    assert w.day == 0 and (w.state.wealth == before).all()


def test_cheap_talk_texts_are_classified_as_their_intent():
    clf = KeywordIntentClassifier()
    kinds = range(1, len(factored.MESSAGE_KINDS) + 1)
    texts = [factored.render_message(k, 2, 3.5) for k in kinds]
    want = [name in factored.FRIENDLY_KINDS for name in factored.MESSAGE_KINDS]
    assert clf.friendly(texts).tolist() == want
    assert clf.friendly([factored.render_message(6)]).tolist() == [False]


def test_a_friendly_message_then_an_attack_is_deception():
    """An RL-style resident: cheap talk 'friendly' to a slot, the next day an attack on it."""
    w = world.reset(CFG.replace(view_size=CFG.n_agents), 0)
    idle = factored.from_flat(np.array([(2 * CFG.n_factories + 2) * w.catalogue.n_secondary]),
                              CFG)[0]
    acts = np.tile(idle, (w.state.n_pool, 1))
    me = int(w.living[0])
    slot = 0
    victim = int(w.view[me, slot])
    acts[me, 4] = 1 + factored.MESSAGE_KINDS.index("friendly")
    acts[me, 5] = slot
    w, day = world.step_factored(w, acts)
    cols, texts = w.log.columns()
    msg = (cols["kind"] == K.MESSAGE).nonzero()[0]
    assert len(msg) == 1 and cols["actor"][msg[0]] == me and cols["target"][msg[0]] == victim
    assert texts[int(msg[0])] == factored.render_message(1)
    acts = np.tile(idle, (w.state.n_pool, 1))
    acts[me, 1] = S.ATTACK
    acts[me, 2] = int((w.view[me] == victim).nonzero()[0][0])
    w, day = world.step_factored(w, acts)
    assert day.census["behaviours"]["deception"] == 1


def test_the_parallel_path_takes_factored_rows_and_plays_the_same_day():
    """world.step given each living resident's factored row (array, list or tuple) plays the
    day that world.step_factored plays, messages included."""
    wa, wb = world.reset(CFG, 5), world.reset(CFG, 5)
    rng = np.random.default_rng(5)
    spec = factored.FactoredSpec.of(CFG)
    o = spec.offsets
    forms = (np.asarray, list, tuple)
    while not wa.done:
        rows = wa.living
        m = factored.masks(wa.state, wa.view, rows, CFG, wa.catalogue).astype(bool)
        acts = np.zeros((wa.state.n_pool, factored.N_COMPONENTS), np.int64)
        for c in range(factored.N_COMPONENTS):
            s = np.where(m[:, o[c]:o[c + 1]], rng.random((len(rows), int(spec.nvec[c]))), -1)
            acts[rows, c] = s.argmax(axis=1)
        wa, _ = world.step(wa, {agent_name(i): forms[k % 3](acts[i].tolist()) if k % 3 else
                                acts[i] for k, i in enumerate(rows.tolist())})
        wb, _ = world.step_factored(wb, acts)
    a, b = log_text(wa), log_text(wb)
    assert a == b and "message" in a


def test_huge_ints_in_a_factored_row_are_flagged_like_huge_flat_ids():
    w = world.reset(CFG, 0)
    rows = {"resident_0": [2**70, 0, 0, 0, 0, 0],
            "resident_1": np.array([2**63, 0, 0, 0, 0, 0], np.uint64),
            "resident_2": [CFG.n_factories, 0, 0, 0, -(2**80), 0]}
    w, day = world.step(w, rows)
    for i in (0, 1):
        assert any("primary choice outside" in r for r in day.invalid[i]), day.invalid[i]
    assert any("message kind outside" in r for r in day.invalid[2]), day.invalid[2]


@pytest.mark.parametrize("bad", [[1, 2, 3], [0.5, 0, 0, 0, 0, 0], np.zeros(6),
                                 [True, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, "0"]])
def test_what_is_not_a_factored_row_is_a_value_error(bad):
    w = world.reset(CFG, 0)
    with pytest.raises(ValueError, match="resident_0"):
        world.step(w, {"resident_0": bad})
