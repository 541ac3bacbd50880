"""Ready means a job submitted now would complete: broker, calculator, projector, downloader."""

from collections.abc import Awaitable, Callable

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import (
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
)
from aiokafka.protocol.api import Request

from services.shared.settings import KafkaSettings

_NEEDED_ROLES = ("calculator", "projector")


_UpToV2 = DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2


class _DescribeGroups(Request[_UpToV2]):  # type: ignore[misc]
    """DescribeGroups up to v2: aiokafka 0.14 decodes v3 answers with the v2 schema and fails."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(
        self, request_struct_class: type[DescribeGroupsRequest_v0]
    ) -> DescribeGroupsRequest_v0:
        return request_struct_class(self._groups)


async def check_readiness(
    connected: bool,
    missing_consumers: Callable[[], Awaitable[list[str]]],
    downloader: httpx.AsyncClient,
) -> list[str]:
    """What stands between a job submitted now and its completion (nothing: ready).
    `connected`: whether the API can publish; `missing_consumers`: the roles nothing runs."""
    problems = []
    if not connected:
        problems.append("not connected to kafka")
    else:
        problems += await missing_consumers()
    # Broken, not busy: a downloader slow to answer while it serves many clients is still there
    # (and the API serves what is already compressed itself); only one that refuses is down.
    try:
        if (await downloader.get("/healthz", timeout=5)).status_code != 200:
            problems.append("downloader is not healthy")
    except httpx.TimeoutException:
        pass
    except httpx.HTTPError:
        problems.append("downloader is not reachable")
    return problems


async def missing_consumers(kafka: KafkaSettings) -> list[str]:
    """The roles whose consumer group has no member with partitions assigned."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.kafka_bootstrap_servers, request_timeout_ms=2000
    )
    active = set()
    try:
        await admin.start()
        for role in _NEEDED_ROLES:
            group_id = kafka.group_id(role)
            coordinator = await admin.find_coordinator(group_id)
            response = await admin._send_request(_DescribeGroups([group_id]), coordinator)
            for error_code, _, state, _, _, members in response.groups:
                if error_code == 0 and state == "Stable" and members:
                    active.add(role)
    except KafkaError as error:
        return [f"kafka is not answering ({type(error).__name__})"]
    finally:
        await admin.close()
    return [f"no {role} is running" for role in _NEEDED_ROLES if role not in active]
