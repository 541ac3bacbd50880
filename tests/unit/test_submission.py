import json

import pytest

from services.api.admission import FREE_DECIMALS, CostLimits, refusal
from services.api.submission import MAX_BODY_BYTES, parse_submission
from services.shared.settings import ApiSettings
from services.shared.web import ApiError

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@pytest.mark.parametrize(
    ("body", "content_type", "num"),
    [
        (b"num=12", FORM, 12),
        (b"num=12", "", 12),
        (b'{"num": 12}', JSON, 12),
        (b'{"num": "12"}', "application/json; charset=utf-8", 12),
        (b"num=1000", FORM, 1000),
    ],
)
def test_whole_numbers_in_a_form_or_json_are_accepted(
    body: bytes, content_type: str, num: int
) -> None:
    assert parse_submission(body, content_type, 1000) == (num, 10)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"", FORM, 422),
        (b"number=12", FORM, 422),
        (b"num=", FORM, 422),
        (b"num=0", FORM, 422),
        (b"num=-5", FORM, 422),
        (b"num=%2B12", FORM, 422),
        (b"num=1.5", FORM, 422),
        (b"num=1e3", FORM, 422),
        (b"num=abc", FORM, 422),
        (b"num=1001", FORM, 422),
        (b"num=99999999999999999999999999", FORM, 422),
        ("num=١٢".encode(), FORM, 422),  # Arabic-Indic digits: int() takes them, we do not
        (b"num=1&num=2", FORM, 422),
        (b"num=%ff", FORM, 422),
        (b"\xff\xfe", FORM, 400),
        (b"{", JSON, 400),
        (b"[12]", JSON, 422),
        (b'{"num": true}', JSON, 422),
        (b'{"num": 12.5}', JSON, 422),
        (b'{"num": null}', JSON, 422),
        (b'{"num": [12]}', JSON, 422),
        (b'{"n": 12}', JSON, 422),
        (b"num=12&radix=8", FORM, 422),
        (b"num=12&radix=16&radix=16", FORM, 422),
        (b'{"num": 12, "radix": "hex"}', JSON, 422),
        (b'{"num": 12, "radix": 16.5}', JSON, 422),
        (b"num=12", "text/plain", 415),
        (b"num=" + b"1" * MAX_BODY_BYTES, FORM, 413),
    ],
)
def test_anything_else_is_refused_with_a_message(
    body: bytes, content_type: str, status: int
) -> None:
    with pytest.raises(ApiError) as refused:
        parse_submission(body, content_type, 1000)
    assert refused.value.status_code == status
    assert refused.value.message


def test_the_message_says_what_is_allowed() -> None:
    with pytest.raises(ApiError) as refused:
        parse_submission(json.dumps({"num": 0}).encode(), JSON, 1000)
    assert "from 1 to 1000" in refused.value.message


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"num=12&radix=16", FORM),
        (b"radix=16&num=12", ""),
        (b'{"num": 12, "radix": 16}', JSON),
        (b'{"num": "12", "radix": "16"}', JSON),
    ],
)
def test_a_hexadecimal_job_is_asked_for_with_radix_16(body: bytes, content_type: str) -> None:
    assert parse_submission(body, content_type, 1000) == (12, 16)


def test_radix_10_may_be_said_or_left_out() -> None:
    assert parse_submission(b"num=12&radix=10", FORM, 1000) == (12, 10)
    assert parse_submission(b'{"num": 12, "radix": null}', JSON, 1000) == (12, 10)


def test_the_default_maximum_accepts_a_billion_and_refuses_one_more() -> None:
    max_num = ApiSettings().pi_jobs_max_num
    assert parse_submission(b"num=1000000000", FORM, max_num) == (1_000_000_000, 10)
    assert parse_submission(b'{"num": 1000000000}', JSON, max_num) == (1_000_000_000, 10)
    with pytest.raises(ApiError) as refused:
        parse_submission(b"num=1000000001", FORM, max_num)
    assert refused.value.status_code == 422 and "1 to 1000000000" in refused.value.message


def test_the_default_budgets_admit_one_job_of_the_maximum() -> None:
    api = ApiSettings()
    limits = CostLimits(
        api.pi_jobs_max_pending_decimals_per_client, api.pi_jobs_max_queued_decimals
    )
    assert refusal("alice", api.pi_jobs_max_num, [], FREE_DECIMALS, limits) is None
