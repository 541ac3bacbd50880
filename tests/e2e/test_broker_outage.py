"""The broker goes away: submissions get a quick 503, reads keep working, and everything
reconnects by itself when it is back, with no acknowledged job lost."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.kafka.local_broker import LocalBroker
from tests.e2e.helpers import download_text, submit, wait_complete
from tests.stacks import start_stack, stop_stack
from tests.support import reference_pi_text, wait_until


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker.on_free_ports(tmp_path / "kafka")
    with broker:
        yield broker


def test_a_broker_outage_is_survived(own_broker: LocalBroker, tmp_path: Path) -> None:
    stack = start_stack(own_broker.bootstrap_servers, tmp_path / "stack", topic_prefix="outage")
    try:
        # A hang would show as a timeout of this client: the service promises an answer in 2 s.
        with httpx.Client(base_url=stack.url, timeout=10) as client:
            before = submit(client, 300)
            wait_complete(client, before)

            own_broker.stop()
            refused = client.post("/pi_job", data={"num": "400"})
            assert refused.status_code == 503, refused.text
            print(f"503 answered in {refused.elapsed.total_seconds() * 1000:.0f} ms")
            assert refused.json()["success"] is False and "try again" in refused.json()["error"]
            # Reads come from the view: they do not need the broker.
            assert client.get(f"/pi_job/{before}").json()["status"] == "complete"
            assert download_text(client, before) == reference_pi_text(300)
            assert client.get("/readyz").status_code == 503

            own_broker.start()
            own_broker.wait_ready()
            wait_until(lambda: client.get("/readyz").status_code == 200, 120, "ready again")
            after = submit(client, 500)
            wait_complete(client, after)
            assert download_text(client, after) == reference_pi_text(500)
            # The refused submission was not created behind the client's back.
            listed = client.get("/pi_jobs", params={"limit": 100}).json()["jobs"]
            assert sorted(j["num"] for j in listed) == [300, 500]
    finally:
        stop_stack(stack, show_logs=True)
