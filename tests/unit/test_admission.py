"""Admission by cost: which submissions one owner, and everyone, may add to the queue."""

from datetime import UTC, datetime

from services.api.admission import FREE_DECIMALS, CostLimits, free_up_to, refusal
from services.shared.view import JobView

LIMITS = CostLimits(per_owner=100, queued=250)
FREE = 10  # decimals stored, or cheap enough to cost nothing


def job(owner: str, num: int, status: str = "queued") -> JobView:
    return JobView.model_validate(
        {
            "job_id": f"{owner}-{num}",
            "num": num,
            "status": status,
            "requested_at": datetime(2026, 1, 1, tzinfo=UTC),
            "owner": owner,
        }
    )


def test_an_owner_may_fill_its_budget_and_no_more() -> None:
    pending = [job("alice", 60, "in_progress"), job("alice", 30)]
    assert refusal("alice", 10, pending, FREE, LIMITS) is None
    why = refusal("alice", 11, pending, FREE, LIMITS)
    assert why is not None and "2 of your jobs" in why and "90 decimals" in why


def test_jobs_the_stored_digits_answer_cost_nothing() -> None:
    assert free_up_to(0) == free_up_to(FREE_DECIMALS) == FREE_DECIMALS
    assert free_up_to(5 * FREE_DECIMALS) == 5 * FREE_DECIMALS
    pending = [job("alice", FREE)] * 50
    assert refusal("alice", FREE, pending, FREE, LIMITS) is None
    assert refusal("alice", 100, pending, FREE, LIMITS) is None


def test_one_owner_budget_leaves_others_theirs() -> None:
    pending = [job("alice", 100)]
    assert refusal("alice", 11, pending, FREE, LIMITS) is not None
    assert refusal("bob", 100, pending, FREE, LIMITS) is None


def test_the_whole_queue_has_a_cap() -> None:
    pending = [job("alice", 100), job("bob", 100)]
    assert refusal("carol", 50, pending, FREE, LIMITS) is None
    why = refusal("carol", 51, pending, FREE, LIMITS)
    assert why is not None and "the queue holds 200 decimals" in why


def test_a_job_larger_than_a_budget_is_refused_even_alone() -> None:
    assert refusal("alice", 101, [], FREE, LIMITS) is not None


def test_a_hexadecimal_job_costs_the_decimals_it_computes() -> None:
    hexadecimal = job("alice", 50).model_copy(update={"radix": 16})  # 61 decimals to compute
    assert refusal("alice", 39, [hexadecimal], FREE, LIMITS) is None
    why = refusal("alice", 40, [hexadecimal], FREE, LIMITS)
    assert why is not None and "61 decimals" in why
