"""Fitting a server's shared memory into what /dev/shm has free."""

from __future__ import annotations

import pytest

import litserve as ls
from litserve.config import MiB, fit_shared_memory, shm_free
from litserve.errors import ConfigError


def _plan(**kwargs):
    return ls.LitServer(ls.examples.SimpleLitAPI(), **kwargs).plan(num_api_servers=2)


def test_default_sizes_fit_a_roomy_dev_shm_unchanged():
    plan = _plan()
    before = (plan.request_arena_bytes, plan.response_arena_bytes)
    assert fit_shared_memory(plan, 64 << 30, explicit=False) is None
    assert (plan.request_arena_bytes, plan.response_arena_bytes) == before


def test_default_sizes_shrink_to_a_small_dev_shm_and_say_so():
    plan = _plan()
    said = fit_shared_memory(plan, 64 * MiB, explicit=False)  # Docker's default --shm-size
    assert said is not None and "only 64 MiB of shared memory" in said
    assert "--shm-size" in said
    used = 2 * plan.request_arena_bytes + plan.response_arena_bytes
    assert used <= 0.8 * 64 * MiB
    assert plan.request_arena_bytes >= 2 * MiB and plan.response_arena_bytes >= 2 * MiB
    assert f"limited to {plan.request_arena_bytes // MiB - 1} MiB" in said


def test_explicit_sizes_that_do_not_fit_are_an_error():
    plan = _plan(max_payload_size=512 * MiB)
    with pytest.raises(ConfigError, match=r"needs \d+ MiB of shared memory \(/dev/shm\) but only "
                                          r"64 MiB are free"):
        fit_shared_memory(plan, 64 * MiB, explicit=True)


def test_far_too_little_shared_memory_is_an_error():
    with pytest.raises(ConfigError, match="too little to serve"):
        fit_shared_memory(_plan(), 4 * MiB, explicit=False)


def test_this_machine_reports_its_free_shared_memory():
    assert shm_free() > 0


def test_more_workers_than_a_slot_word_can_name_is_an_error():
    """A slot's state word names its claimer in 10 bits (litserve.ipc.slots)."""
    from litserve.examples import SimpleLitAPI

    with pytest.raises(ConfigError, match="make 1023 workers; at most 1022 are supported"):
        ls.LitServer(SimpleLitAPI(), workers_per_device=1023)
    assert ls.LitServer(SimpleLitAPI(), workers_per_device=1022).workers_per_device == 1022
