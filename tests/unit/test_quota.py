import pytest

from services.api.quota import SubmissionQuota
from services.shared.web import ApiError


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_refused_with_when_to_retry() -> None:
    clock = Clock()
    quota = SubmissionQuota(per_second=0.5, burst=3, clock=clock)
    for _ in range(3):
        quota.take("10.0.0.1")
    with pytest.raises(ApiError) as refused:
        quota.take("10.0.0.1")
    assert refused.value.status_code == 429
    assert refused.value.headers == {"Retry-After": "2"}
    assert "at most 0.5 per second" in refused.value.message
    quota.take("10.0.0.2")  # other clients are not affected
    clock.now += 2
    quota.take("10.0.0.1")  # refilled
