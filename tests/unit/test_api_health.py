"""HealthProbe: positive answers reused briefly, failures never, one probe in flight, a timeout."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest
from fastapi.testclient import TestClient

from k2.api.app import create_app
from k2.api.health import HealthProbe
from k2.api.memory import InMemoryTradeRepository
from k2.api.models import HealthResponse
from k2.api.repository import Readiness
from tests.unit.clocks import ManualClock


class SlowRepository(InMemoryTradeRepository):
    """Readiness that takes `delay` seconds of real time and counts its calls."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.probes = 0

    async def readiness(self) -> Readiness:
        self.probes += 1
        await anyio.sleep(self.delay)
        return Readiness(7)


def test_success_is_reused_for_ttl_then_probed_again() -> None:
    repo = InMemoryTradeRepository()
    clock = ManualClock()
    probe = HealthProbe(repo, ttl=1.0, clock=clock)

    async def scenario() -> None:
        assert (await probe.check()).ok
        clock.now += 0.5
        assert (await probe.check()).ok
        assert repo.calls == 1
        clock.now += 0.6
        assert (await probe.check()).ok
        assert repo.calls == 2

    anyio.run(scenario)


def test_failure_is_never_reused() -> None:
    repo = InMemoryTradeRepository()
    repo.fail_with = "catalog unreachable: refused"
    clock = ManualClock()
    probe = HealthProbe(repo, clock=clock)

    async def scenario() -> None:
        first = await probe.check()
        assert not first.ok
        assert first.reason == "catalog unreachable: refused"
        clock.now += 0.01
        repo.fail_with = None
        assert (await probe.check()).ok
        assert repo.calls == 2

    anyio.run(scenario)


def test_a_cached_success_still_turns_into_failure_after_ttl() -> None:
    repo = InMemoryTradeRepository()
    clock = ManualClock()
    probe = HealthProbe(repo, ttl=1.0, clock=clock)

    async def scenario() -> None:
        assert (await probe.check()).ok
        repo.fail_with = "table gone"
        clock.now += 1.01
        assert not (await probe.check()).ok

    anyio.run(scenario)


def test_concurrent_checks_share_one_probe() -> None:
    repo = SlowRepository(delay=0.05)
    probe = HealthProbe(repo)
    results = []

    async def one() -> None:
        results.append(await probe.check())

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(10):
                group.start_soon(one)

    anyio.run(scenario)
    assert repo.probes == 1
    assert all(r.ok and r.snapshot_id == 7 for r in results)


def test_a_hanging_store_is_reported_within_the_timeout() -> None:
    repo = SlowRepository(delay=10.0)
    probe = HealthProbe(repo, timeout=0.05)

    async def scenario() -> None:
        with anyio.fail_after(2):
            result = await probe.check()
        assert not result.ok
        assert result.reason == "trade store did not answer within 0.05 s"

    anyio.run(scenario)


def test_unexpected_errors_are_reported_not_raised() -> None:
    class Broken(InMemoryTradeRepository):
        async def readiness(self) -> Readiness:
            raise KeyError("boom")

    result = anyio.run(HealthProbe(Broken()).check)
    assert not result.ok
    assert result.reason == "KeyError: 'boom'"


@pytest.fixture
def repo() -> InMemoryTradeRepository:
    return InMemoryTradeRepository()


@pytest.fixture
def client(repo: InMemoryTradeRepository) -> Iterator[TestClient]:
    probe = HealthProbe(repo, ttl=0.0)
    with TestClient(create_app(repo, api_key="k", health=probe)) as c:
        yield c


def test_health_endpoint_tells_the_truth(client: TestClient, repo: InMemoryTradeRepository) -> None:
    ok = client.get("/health")
    assert ok.status_code == 200
    assert HealthResponse.model_validate(ok.json()).status == "ok"
    repo.fail_with = "catalog unreachable: ConnectionError: refused"
    down = client.get("/health")
    assert down.status_code == 503
    body = HealthResponse.model_validate(down.json())
    assert body.status == "unavailable"
    assert body.reason == "catalog unreachable: ConnectionError: refused"
    assert down.headers["X-Correlation-ID"]
