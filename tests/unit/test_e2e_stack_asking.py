"""Asking a service its healthcheck's own question from the host (e2e_stack.asking)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from e2e_stack.asking import ASK_TIMEOUT_S, HttpHealthcheck, askable, http_healthcheck
from e2e_stack.headstart import Headstart
from e2e_stack.readiness import ContainerState, HealthcheckPasses
from e2e_stack.waiting import ASK_WINDOW_S, wait_until_ready
from tests.unit.clocks import ManualClock

REGISTRY_CHECK = [
    "CMD",
    "curl",
    "-fsS",
    "-o",
    "/dev/null",
    "http://127.0.0.1:8080/apis/ccompat/v7/subjects",
]
API_CHECK = [
    "CMD",
    "curl",
    "-sS",
    "--fail-with-body",
    "--max-time",
    "4",
    "http://127.0.0.1:8000/health",
]


def test_a_curl_get_of_the_containers_own_port_is_understood() -> None:
    registry = HttpHealthcheck(8080, "/apis/ccompat/v7/subjects", True)
    assert http_healthcheck(REGISTRY_CHECK) == registry
    assert http_healthcheck(API_CHECK) == HttpHealthcheck(8000, "/health", True)
    plain = ["CMD", "curl", "-s", "http://localhost:9000/ready?deep=1"]
    assert http_healthcheck(plain) == HttpHealthcheck(9000, "/ready?deep=1", False)


@pytest.mark.parametrize(
    "test",
    [
        ["CMD", "kafka-ready"],
        ["CMD-SHELL", "curl -fsS http://127.0.0.1:8080/"],
        ["CMD", "curl", "-fsS", "-X", "POST", "http://127.0.0.1:8080/"],
        ["CMD", "curl", "-fsS", "-H", "Host: other", "http://127.0.0.1:8080/"],
        ["CMD", "curl", "-fsSk", "http://127.0.0.1:8080/"],
        ["CMD", "curl", "--data", "x", "http://127.0.0.1:8080/"],
        ["CMD", "curl", "-fsS", "https://127.0.0.1:8443/"],
        ["CMD", "curl", "-fsS", "http://db:5432/"],
        ["CMD", "curl", "-fsS", "http://127.0.0.1:1/", "http://127.0.0.1:2/"],
        ["CMD", "curl", "-fsS", "http://u:p@127.0.0.1:8080/"],
        ["CMD", "curl", "-fsS"],
    ],
)
def test_anything_more_than_one_plain_get_is_left_to_the_engine(test: Sequence[str]) -> None:
    assert http_healthcheck(test) is None


def test_only_services_whose_checked_port_is_published_can_be_asked() -> None:
    model = {
        "services": {
            "schema-registry": {
                "healthcheck": {"test": REGISTRY_CHECK},
                "ports": [{"target": 8080, "host_ip": "127.0.0.1"}],
            },
            "inside-only": {"healthcheck": {"test": REGISTRY_CHECK}},
            "other-port": {
                "healthcheck": {"test": REGISTRY_CHECK},
                "ports": [{"target": 9090}],
            },
            "disabled": {
                "healthcheck": {"test": REGISTRY_CHECK, "disable": True},
                "ports": [{"target": 8080}],
            },
            "kafka": {"healthcheck": {"test": ["CMD", "kafka-ready"]}, "ports": [{"target": 9094}]},
            "one-shot": {},
        }
    }
    assert set(askable(model, "127.0.0.1")) == {"schema-registry"}


class _Service(BaseHTTPRequestHandler):
    status = 200
    delay_s = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[tuple[type[_Service], int]]:
    handler = type("Handler", (_Service,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, server.server_address[1]
    server.shutdown()
    server.server_close()


def _running(published: Mapping[int, int], status: str = "running") -> ContainerState:
    return ContainerState("svc", "c1", status, "starting", published=published)


def test_the_answer_follows_the_status_and_curls_fail_flag(
    service: tuple[type[_Service], int],
) -> None:
    handler, port = service
    strict = HttpHealthcheck(8080, "/health", True).asks("127.0.0.1")
    lenient = HttpHealthcheck(8080, "/health", False).asks("127.0.0.1")
    assert strict(_running({8080: port}))
    handler.status = 503
    assert not strict(_running({8080: port}))
    assert lenient(_running({8080: port})), "without -f curl passes on any HTTP answer"


def test_no_answer_without_a_running_container_a_published_port_or_a_listener(
    service: tuple[type[_Service], int],
) -> None:
    _handler, port = service
    ask = HttpHealthcheck(8080, "/", True).asks("127.0.0.1")
    assert not ask(_running({8080: port}, status="created"))
    assert not ask(_running({}))
    assert not ask(_running({8080: 1}))  # nothing listens on port 1


def test_a_service_slower_than_the_ask_timeout_is_left_to_the_engine(
    service: tuple[type[_Service], int],
) -> None:
    handler, port = service
    handler.delay_s = ASK_TIMEOUT_S * 3
    started = time.monotonic()
    assert not HttpHealthcheck(8080, "/", True).asks("127.0.0.1")(_running({8080: port}))
    assert time.monotonic() - started < ASK_TIMEOUT_S * 2.5


class _StartingEngine:
    """Every service runs, and the engine's own healthcheck has not passed yet."""

    def __init__(self) -> None:
        self.looks = 0

    def observe(self, services: Sequence[str]) -> dict[str, ContainerState]:
        self.looks += 1
        return {s: ContainerState(s, f"c-{s}", "running", "starting") for s in services}

    def logs(self, _service: str, tail: int) -> str:
        return ""


MODEL = {"services": {"registry": {"healthcheck": {"test": REGISTRY_CHECK}}}}


def test_a_service_that_answers_is_ready_before_the_engine_says_so() -> None:
    clock = ManualClock()
    answers = iter([False, False, True])
    changes: list[tuple[str, str]] = []
    report = wait_until_ready(
        _StartingEngine(),  # type: ignore[arg-type]
        {"registry": HealthcheckPasses()},
        {"registry": 60.0},
        on_change=lambda service, text, _s: changes.append((service, text)),
        clock=clock,
        sleep=clock.sleep,
        headstart=Headstart(MODEL, {"registry": lambda _state: next(answers)}),
        nap=clock.sleep,
    )
    assert changes == [("registry", "running (starting)"), ("registry", "ready")]
    assert report.ready_after_s["registry"] == pytest.approx(0.4)


def test_asking_stops_for_a_look_at_the_engine_when_it_reports_a_change() -> None:
    """A neighbour without an askable check is seen as soon as the engine has news of it."""
    clock = ManualClock()
    engine = _StartingEngine()
    naps: list[float] = []

    def nap(seconds: float) -> bool:
        naps.append(seconds)
        clock.now += seconds
        return True  # an event came

    with pytest.raises(Exception, match="not ready after"):
        wait_until_ready(
            engine,  # type: ignore[arg-type]
            {"registry": HealthcheckPasses()},
            {"registry": 1.0},
            clock=clock,
            sleep=clock.sleep,
            headstart=Headstart(MODEL, {"registry": lambda _state: False}),
            nap=nap,
        )
    assert engine.looks == len(naps) + 1, "each wake-up is followed by a look"


def test_without_news_the_engine_is_looked_at_again_after_the_ask_window() -> None:
    clock = ManualClock()
    engine = _StartingEngine()
    with pytest.raises(Exception, match="not ready after"):
        wait_until_ready(
            engine,  # type: ignore[arg-type]
            {"registry": HealthcheckPasses()},
            {"registry": 3.5},
            clock=clock,
            sleep=clock.sleep,
            headstart=Headstart(MODEL, {"registry": lambda _state: False}),
            nap=clock.sleep,
        )
    assert engine.looks == pytest.approx(3.5 / ASK_WINDOW_S + 1, abs=1)
