"""The store contract, idempotency: one holder per (plugin, key) within the window."""

from __future__ import annotations

from datetime import timedelta

from .runs import NOW

WINDOW = 3600.0


def test_the_first_delivery_claims_the_key_and_a_repeat_finds_its_holder(store):
    assert store.claim_delivery("a", "k", "run-1", NOW, WINDOW) is None
    holder = store.claim_delivery("a", "k", "run-2", NOW + timedelta(seconds=5), WINDOW)
    assert holder is not None and holder.execution_id == "run-1" and holder.age_s == 5.0
    assert store.claim_delivery("b", "k", "run-3", NOW, WINDOW) is None  # another plugin


def test_a_claim_older_than_the_window_is_claimed_anew(store):
    store.claim_delivery("a", "k", "run-1", NOW, WINDOW)
    later = NOW + timedelta(seconds=WINDOW + 1)
    assert store.claim_delivery("a", "k", "run-2", later, WINDOW) is None
    assert store.claim_delivery("a", "k", "run-3", later, WINDOW).execution_id == "run-2"


def test_take_over_moves_the_key_once(store):
    store.claim_delivery("a", "k", "lost", NOW, WINDOW)
    assert store.take_over_delivery("a", "k", "lost", "run-2", NOW) is True
    assert store.take_over_delivery("a", "k", "lost", "run-3", NOW) is False
    assert store.claim_delivery("a", "k", "run-4", NOW, WINDOW).execution_id == "run-2"


def test_release_frees_the_key_of_its_holder_only(store):
    store.claim_delivery("a", "k", "run-1", NOW, WINDOW)
    store.release_delivery("a", "k", "someone-else")
    assert store.claim_delivery("a", "k", "run-2", NOW, WINDOW).execution_id == "run-1"
    store.release_delivery("a", "k", "run-1")
    assert store.claim_delivery("a", "k", "run-2", NOW, WINDOW) is None


def test_purge_forgets_old_claims(store):
    store.claim_delivery("a", "old", "run-1", NOW - timedelta(days=2), WINDOW)
    store.claim_delivery("a", "new", "run-2", NOW, WINDOW)
    assert store.purge_deliveries(NOW - timedelta(days=1)) == 1
    assert store.claim_delivery("a", "old", "run-3", NOW, WINDOW) is None
    assert store.claim_delivery("a", "new", "run-4", NOW, WINDOW).execution_id == "run-2"


def test_a_claim_keeps_how_its_run_ended_and_the_answer(store):
    """The run's final write finishes its claim in the same transaction, so a repeat
    is decided by the claim alone, even once the record is gone."""
    from bridge.model import Status

    from .runs import finished

    assert store.claim_delivery("a", "k", "run-1", NOW, WINDOW, '{"method": "POST"}') is None
    held = store.claim_delivery("a", "k", "run-2", NOW, WINDOW)
    assert (held.state, held.answer) == ("running", '{"method": "POST"}')
    done = finished("run-1", NOW, idempotency_key="k", delivery_answer='{"output": "{}"}')
    store.update(done, wait=True)
    held = store.claim_delivery("a", "k", "run-3", NOW, WINDOW)
    assert (held.execution_id, held.state, held.answer) == (
        "run-1",
        "completed",
        '{"output": "{}"}',
    )
    assert store.delete_batch(NOW + timedelta(days=1), 10) == 1  # the record goes
    assert store.claim_delivery("a", "k", "run-4", NOW, WINDOW).state == "completed"

    store.claim_delivery("a", "f", "run-5", NOW, WINDOW)
    store.update(finished("run-5", NOW, status=Status.FAILED, idempotency_key="f"), wait=True)
    assert store.claim_delivery("a", "f", "run-6", NOW, WINDOW).state == "failed"
    assert store.take_over_delivery("a", "f", "run-5", "run-6", NOW, '{"x": 1}') is True
    assert store.claim_delivery("a", "f", "run-7", NOW, WINDOW).state == "running"
