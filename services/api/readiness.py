"""Ready means a job submitted now would complete: broker, calculator, projector, downloader."""

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.shared.settings import KafkaSettings

_NEEDED_GROUPS = ("calculator", "projector")


async def check_readiness(
    kafka: KafkaSettings, producer: AIOKafkaProducer | None, downloader: httpx.AsyncClient
) -> list[str]:
    problems = []
    if producer is None:
        problems.append("not connected to kafka")
    else:
        problems += await _missing_consumer_groups(kafka)
    try:
        if (await downloader.get("/healthz", timeout=2)).status_code != 200:
            problems.append("downloader is not healthy")
    except httpx.HTTPError:
        problems.append("downloader is not reachable")
    return problems


async def _missing_consumer_groups(kafka: KafkaSettings) -> list[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka.kafka_bootstrap_servers, request_timeout_ms=2000
    )
    try:
        await admin.start()
        group_ids = [kafka.group_id(role) for role in _NEEDED_GROUPS]
        responses = await admin.describe_consumer_groups(group_ids)
    except KafkaError as error:
        return [f"kafka is not answering ({type(error).__name__})"]
    finally:
        await admin.close()
    active = {
        group[1]
        for response in responses
        for group in response.groups
        if group[0] == 0 and group[2] == "Stable" and group[5]
    }
    return [
        f"no {role} is running"
        for role, gid in zip(_NEEDED_GROUPS, group_ids, strict=True)
        if gid not in active
    ]
