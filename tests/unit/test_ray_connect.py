"""The ray:// connect retry: only Ray client's own "server failed to start" abort is retried, and only a bounded number
of times. Ray's client server cannot be made to fail that way on demand, so a stand-in for the ``ray`` module plays
the failing ``ray.init``; the real connection path is covered by the ray:// test in test_ray_launcher.py."""

from __future__ import annotations

import pytest

from scaletrain.driver.launchers import ray_cluster


class FlakyRay:
    """Stands in for the ``ray`` module: ``init`` raises ``failures`` errors before it succeeds."""

    def __init__(self, failures: list[BaseException]):
        self.failures = list(failures)
        self.inits: list[str] = []
        self.shutdowns = 0

    def init(self, address: str, **kwargs) -> None:
        self.inits.append(address)
        if self.failures:
            raise self.failures.pop(0)

    def shutdown(self) -> None:
        self.shutdowns += 1


def client_start_failure() -> ConnectionAbortedError:
    return ConnectionAbortedError("Initialization failure from server:\nTraceback ... timed out waiting for server")


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(ray_cluster.time, "sleep", lambda s: None)


def test_client_server_start_failure_is_retried_until_it_connects():
    ray = FlakyRay([client_start_failure(), client_start_failure()])
    ray_cluster._init_retrying_client_start(ray, "ray://head:10001", {})
    assert ray.inits == ["ray://head:10001"] * 3
    assert ray.shutdowns == 2


def test_client_server_start_failure_gives_up_after_the_last_attempt():
    ray = FlakyRay([client_start_failure()] * ray_cluster.CLIENT_INIT_ATTEMPTS)
    with pytest.raises(ConnectionAbortedError, match="Initialization failure"):
        ray_cluster._init_retrying_client_start(ray, "ray://head:10001", {})
    assert len(ray.inits) == ray_cluster.CLIENT_INIT_ATTEMPTS


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("ray://head:10001", ConnectionAbortedError("Version mismatch: client 2.60 server 2.50")),
        ("head:6379", client_start_failure()),  # a GCS address never goes through Ray client's server
        ("ray://head:10001", ConnectionError("ray client connection timeout")),
    ],
)
def test_other_connect_failures_are_not_retried(target, error):
    ray = FlakyRay([error])
    with pytest.raises(type(error)):
        ray_cluster._init_retrying_client_start(ray, target, {})
    assert len(ray.inits) == 1 and ray.shutdowns == 0
