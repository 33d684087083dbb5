"""The per-connection signaling limiter: token buckets driven by a hand-held clock."""

from __future__ import annotations

import pytest

from bridge.message_rate import ConnectionRate, JoinBudgets, SignalingLimits, TokenBucket


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(capacity=3, rate=2)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(10.4)  # 0.8 tokens back: not yet one
    assert bucket.take(10.5)  # one token back after half a second at 2/s
    assert not bucket.take(10.5)


def test_a_bucket_never_holds_more_than_its_capacity() -> None:
    bucket = TokenBucket(capacity=2, rate=100)
    bucket.take(0.0)
    # An hour of silence refills to the capacity, not to 360,000 tokens.
    assert [bucket.take(3600.0) for _ in range(3)] == [True, True, False]


def test_a_refused_take_costs_nothing_and_a_client_that_slows_down_recovers() -> None:
    bucket = TokenBucket(capacity=1, rate=1)
    assert bucket.take(0.0)
    for step in range(1, 10):  # hammering faster than the rate: all refused...
        assert not bucket.take(step * 0.1)
    assert bucket.take(1.0)  # ...and the refusals did not push the next token back


def test_a_clock_that_goes_back_gives_nothing_away() -> None:
    bucket = TokenBucket(capacity=1, rate=1)
    assert bucket.take(5.0)
    assert not bucket.take(4.0)
    assert not bucket.take(5.5)
    assert bucket.take(6.0)


def test_a_flood_of_a_thousand_messages_a_second_is_stopped_after_the_burst() -> None:
    rate = ConnectionRate(SignalingLimits(message_rate=5, message_burst=30, offers_per_minute=6))
    verdicts = [rate.message(i / 1000) for i in range(1000)]
    first_refusal = verdicts.index("messages")
    # The burst plus what 5/s refills in the 30 ms the burst took.
    assert first_refusal == 30


def test_normal_use_is_never_limited() -> None:
    """A page pings every 5 s and the chair clicks, at worst, a few times a second."""
    rate = ConnectionRate(SignalingLimits(message_rate=5, message_burst=30, offers_per_minute=6))
    assert rate.offer(0.0) is None and rate.offer(0.1) is None  # audio and video
    now = 0.2
    for second in range(600):  # ten minutes of a busy chair: 3 clicks a second, a ping
        for click in range(3):
            now = second + click * 0.1
            assert rate.message(now) is None
        assert rate.message(second + 0.5) is None


def test_offers_are_limited_per_minute() -> None:
    rate = ConnectionRate(SignalingLimits(message_rate=5, message_burst=30, offers_per_minute=6))
    assert [rate.offer(0.0) for _ in range(7)] == [None] * 6 + ["offers"]
    assert rate.offer(5.0) == "offers"  # 6 a minute: one comes back every 10 s
    assert rate.offer(10.0) is None
    assert rate.offer(10.0) == "offers"


@pytest.mark.parametrize("limits", [
    {"message_rate": 0, "message_burst": 1, "offers_per_minute": 1},
    {"message_rate": 1, "message_burst": 0, "offers_per_minute": 1},
    {"message_rate": 1, "message_burst": 1, "offers_per_minute": 0},
])
def test_limits_must_be_positive(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="positive"):
        SignalingLimits(**limits)  # type: ignore[arg-type]


def test_joins_are_budgeted_per_site_and_room() -> None:
    budgets = JoinBudgets(per_minute=12)
    assert all(budgets.join((1, "HUYEN-NGA-SON"), 0.0) for _ in range(12))
    assert not budgets.join((1, "HUYEN-NGA-SON"), 1.0)
    # Another site, or the same site in another room, has its own budget.
    assert budgets.join((1, "HUYEN-MUONG-LAT"), 1.0)
    assert budgets.join((2, "HUYEN-NGA-SON"), 1.0)
    assert budgets.join((1, "HUYEN-NGA-SON"), 5.0)  # one back every 5 s


def test_join_budgets_forget_full_buckets_when_there_are_many() -> None:
    budgets = JoinBudgets(per_minute=2, max_keys=3)
    for code in ("A", "B", "C"):
        budgets.join((1, code), 0.0)
    budgets.join((1, "A"), 0.0)  # A is now empty: remembered
    budgets.join((1, "D"), 120.0)  # B and C refilled long ago: forgotten
    assert set(budgets.buckets) <= {(1, "A"), (1, "D")}
    assert len(budgets.buckets) <= 3
