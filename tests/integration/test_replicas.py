"""Replicas of one model without a router, through a real server and worker: a batch
spread over two upstreams completes whole when one of them dies in the middle, each
request answered once, none spending its only attempt on the dead replica."""

from __future__ import annotations

import threading
import time

from tests.conftest import ServerFactory, client_for
from tests.integration.test_metrics import samples
from tests.stubs import Stub


def test_a_batch_survives_a_replica_dying_in_the_middle(start_server: ServerFactory) -> None:
    with Stub(latency=0.05) as a:
        b = Stub(latency=0.05)
        b.__enter__()
        server = start_server(
            "--engine", "openai", "--model", "m",
            "--upstream-url", f"{a.url}/v1", "--upstream-url", f"{b.url}/v1",
            "--admission", "fixed", "--capacity", "4",
            "--max-attempts", "1", "--poll-interval", "0.05",
        )  # fmt: skip
        client = client_for(server)
        requests = [
            {"custom_id": f"r{i}", "params": {"model": "m", "max_tokens": 8,
             "system": f"prompt {i % 4}: " + "label it. " * 120,
             "messages": [{"role": "user", "content": f"r{i}"}]}}
            for i in range(80)
        ]  # fmt: skip
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]

        def kill_b_midway() -> None:
            while len(b.received) < 10:
                time.sleep(0.01)
            b.__exit__()

        killer = threading.Thread(target=kill_b_midway)
        killer.start()
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            time.sleep(0.05)
        killer.join(10)
        results = list(client.messages.batches.results(batch.id))
        gauges = samples(server.base_url)
    assert sorted(r.custom_id for r in results) == sorted(f"r{i}" for i in range(80))
    assert all(r.result.type == "succeeded" for r in results), [
        r.result for r in results if r.result.type != "succeeded"
    ]
    assert 10 <= len(b.received) < 80 and len(a.received) >= 80 - len(b.received)

    def in_service(stub: Stub) -> float:
        return gauges[
            (
                "batchyard_upstream_replica_in_service",
                (("engine", "openai"), ("replica", f"{stub.url}/v1")),
            )
        ]

    assert (in_service(a), in_service(b)) == (1, 0)  # b taken out
