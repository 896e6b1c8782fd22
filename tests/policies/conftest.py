"""Fixtures of the policy tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module's tests: small models' ops are too small to
    gain from more, and on a busy 2-core machine spinning thread pools made a day several
    times slower."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
