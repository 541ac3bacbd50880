"""Event contracts: round trips, versions, and events written by older code still read."""

import json
from collections.abc import Callable

import pytest

from services.shared.events import (
    DIGITS_PER_CHUNK,
    DigitsStored,
    JobCompleted,
    JobRequested,
    NewerEvent,
    UnreadableEvent,
    decode_digits,
    decode_job_event,
    encode,
)


def test_events_round_trip_with_type_and_version() -> None:
    event = JobRequested(job_id="a", num=12, idempotency_key="k")
    document = json.loads(encode(event))
    assert document["type"] == "JobRequested" and document["version"] == 4
    assert decode_job_event(encode(event)) == event


def test_a_v1_job_requested_written_before_v2_is_upcast() -> None:
    # Exactly what the first release wrote (before idempotency keys existed).
    v1 = (
        b'{"version":1,"occurred_at":"2026-11-30T16:49:59.765646Z",'
        b'"type":"JobRequested","job_id":"01a22d62dd5e6d2e37528e49aa64f7ec","num":12}'
    )
    event = decode_job_event(v1)
    assert isinstance(event, JobRequested)
    assert (event.version, event.num, event.idempotency_key, event.owner) == (4, 12, None, None)
    assert event.radix == 10


def test_a_v2_job_requested_written_before_owners_is_upcast() -> None:
    v2 = (
        b'{"version":2,"occurred_at":"2026-12-01T16:49:59.765646Z","type":"JobRequested",'
        b'"job_id":"01a22d62dd5e6d2e37528e49aa64f7ec","num":12,"idempotency_key":"k"}'
    )
    event = decode_job_event(v2)
    assert isinstance(event, JobRequested)
    assert (event.version, event.idempotency_key, event.owner) == (4, "k", None)


def test_a_v3_job_requested_written_before_hex_jobs_asks_for_decimals() -> None:
    v3 = (
        b'{"version":3,"occurred_at":"2026-12-02T16:49:59.765646Z","type":"JobRequested",'
        b'"job_id":"01a22d62dd5e6d2e37528e49aa64f7ec","num":12,"idempotency_key":null,'
        b'"owner":"k:alice"}'
    )
    event = decode_job_event(v3)
    assert isinstance(event, JobRequested)
    assert (event.version, event.owner, event.radix) == (4, "k:alice", 10)


def test_a_hexadecimal_job_keeps_its_radix_and_no_other_radix_is_read() -> None:
    event = JobRequested(job_id="a", num=12, radix=16)
    assert decode_job_event(encode(event)) == event
    with pytest.raises(UnreadableEvent):
        decode_job_event(
            b'{"type": "JobRequested", "version": 4, "job_id": "a", "num": 1, "radix": 8}'
        )


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        b'{"type": "JobRequested", "version": 0, "job_id": "a", "num": 1}',
        b'{"type": "JobRequested", "version": "2", "job_id": "a", "num": 1}',
        b'{"type": "JobExploded", "version": 1, "job_id": "a"}',
        b'{"type": "JobRequested", "version": 2, "job_id": "a", "num": 0}',
        b'{"type": "JobRequested", "version": 1, "job_id": "a"}',
    ],
)
def test_anything_else_is_unreadable_with_a_reason(raw: bytes | None) -> None:
    with pytest.raises(UnreadableEvent) as unreadable:
        decode_job_event(raw)
    assert str(unreadable.value)


def test_digit_chunks_are_whole() -> None:
    chunk = DigitsStored(chunk_index=3, digits="5" * DIGITS_PER_CHUNK)
    assert decode_digits(encode(chunk)) == chunk and chunk.end == 4 * DIGITS_PER_CHUNK
    with pytest.raises(UnreadableEvent):
        decode_digits(encode(chunk).replace(b'"55', b'"x5', 1))
    with pytest.raises(ValueError):
        DigitsStored(chunk_index=0, digits="1" * (DIGITS_PER_CHUNK - 1))


def test_chunks_of_each_radix_hold_only_its_digits_and_have_their_own_key() -> None:
    decimals = DigitsStored(chunk_index=4, digits="9" * DIGITS_PER_CHUNK)
    hexadecimals = DigitsStored(radix=16, chunk_index=4, digits="af" * (DIGITS_PER_CHUNK // 2))
    assert (decimals.radix, decimals.record_key) == (10, "chunk-4")  # as before radixes
    assert (hexadecimals.radix, hexadecimals.record_key) == (16, "hex-chunk-4")
    assert decode_digits(encode(hexadecimals)) == hexadecimals
    for radix, digits in ((10, "a"), (16, "A"), (16, "g")):
        with pytest.raises(ValueError, match=f"radix-{radix}"):
            DigitsStored.model_validate(
                {"radix": radix, "chunk_index": 0, "digits": digits * DIGITS_PER_CHUNK}
            )
    with pytest.raises(ValueError):
        DigitsStored.model_validate(
            {"radix": 8, "chunk_index": 0, "digits": "1" * DIGITS_PER_CHUNK}
        )


def test_a_v1_digits_stored_record_reads_as_decimals() -> None:
    v1 = (
        b'{"version":1,"occurred_at":"2026-11-30T16:49:59.765646Z","type":"DigitsStored",'
        b'"chunk_index":2,"digits":"' + b"1" * DIGITS_PER_CHUNK + b'"}'
    )
    chunk = decode_digits(v1)
    assert (chunk.version, chunk.radix, chunk.chunk_index) == (2, 10, 2)
    assert chunk.digits == "1" * DIGITS_PER_CHUNK and chunk.record_key == "chunk-2"


def test_completion_says_where_the_digits_came_from() -> None:
    with pytest.raises(ValueError):
        JobCompleted.model_validate(
            {"job_id": "a", "num": 1, "digits_source": "guessed", "compute_seconds": 0}
        )


def test_a_v1_job_completed_is_upcast_with_no_worker() -> None:
    v1 = (
        b'{"version":1,"occurred_at":"2026-11-30T16:49:59.765646Z","type":"JobCompleted",'
        b'"job_id":"a","num":12,"digits_source":"stored","compute_seconds":0.0}'
    )
    event = decode_job_event(v1)
    assert isinstance(event, JobCompleted)
    assert (event.version, event.worker, event.digits_source) == (2, None, "stored")


def test_fields_added_by_newer_code_are_ignored() -> None:
    raw = b'{"type": "JobRequested", "version": 2, "job_id": "a", "num": 1, "priority": "high"}'
    event = decode_job_event(raw)
    assert isinstance(event, JobRequested) and (event.job_id, event.num) == ("a", 1)


@pytest.mark.parametrize(
    ("raw", "decode"),
    [
        (
            b'{"type": "JobRequested", "version": 5, "job_id": "a", "num": 1, "lane": "x"}',
            decode_job_event,
        ),
        (b'{"type": "JobCancelled", "version": 7, "job_id": "a"}', decode_job_event),
        (b'{"type": "DigitsStored", "version": 3, "chunk_index": 0, "digits": "1"}', decode_digits),
    ],
)
def test_a_version_newer_than_the_code_is_too_new_not_unreadable(
    raw: bytes, decode: Callable[[bytes], object]
) -> None:
    with pytest.raises(NewerEvent) as newer:
        decode(raw)
    document = json.loads(raw)
    assert (newer.value.type_name, newer.value.version) == (document["type"], document["version"])
    assert f"v{document['version']}" in str(newer.value)
