"""Who is calling: an address's pseudonym without keys, a key's name with them."""

import pytest

from services.api.callers import ApiKeys, address_owner
from services.shared.web import ApiError


def scope(address: str = "10.0.0.7", authorization: str | None = None) -> dict[str, object]:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return {"type": "http", "client": (address, 5000), "headers": headers}


def test_without_keys_everyone_sees_everything_and_owns_by_address() -> None:
    caller = ApiKeys("").caller(scope())
    assert caller.address == "10.0.0.7" and not caller.keyed
    assert caller.owner == address_owner("10.0.0.7") and "10.0.0.7" not in caller.owner
    assert caller.may_see("key-anyone") and caller.may_see(None)


def test_with_keys_a_caller_is_its_key_and_sees_only_its_own() -> None:
    keys = ApiKeys("alice:s3cret, bob:0ther")
    alice = keys.caller(scope(authorization="Bearer s3cret"))
    assert (alice.owner, alice.keyed) == ("key-alice", True)
    assert alice.may_see("key-alice") and not alice.may_see("key-bob")
    assert not alice.may_see(None)  # jobs from before keys were required
    assert keys.caller(scope(authorization="bearer 0ther")).owner == "key-bob"


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer nope", "Basic s3cret"])
def test_with_keys_a_call_without_a_valid_one_is_401(authorization: str | None) -> None:
    with pytest.raises(ApiError) as refused:
        ApiKeys("alice:s3cret").caller(scope(authorization=authorization))
    assert refused.value.status_code == 401
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}


def test_a_bare_key_is_named_by_its_digest() -> None:
    owner = ApiKeys("s3cret").caller(scope(authorization="Bearer s3cret")).owner
    assert owner.startswith("key-") and "s3cret" not in owner


def test_an_empty_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="empty key"):
        ApiKeys("alice:")
