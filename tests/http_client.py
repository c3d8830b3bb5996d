"""What the HTTP tests share: real requests with urllib, and a parsed Prometheus scrape.

Requests never go through a proxy from the environment: the server is on loopback.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DaemonProcess

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def request(url: str, method: str = "GET", timeout: float = 10.0) -> Response:
    """One real request; an HTTP error status is a response like any other."""
    assert url.startswith("http://"), url
    req = urllib.request.Request(url, method=method)  # noqa: S310 (http:// only, above)
    try:
        with _DIRECT.open(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Response(exc.code, exc.headers, exc.read())


def url_of(daemon: DaemonProcess) -> str:
    """The base URL a daemon started with `--http HOST:0` logged in `http_started`."""
    [started] = daemon.wait_for("http_started")
    host = f"[{started['host']}]" if ":" in started["host"] else started["host"]
    return f"http://{host}:{started['port']}"


class Scrape:
    """One /metrics exposition, parsed by prometheus_client's own parser."""

    def __init__(self, text: str) -> None:
        self.samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}

    @classmethod
    def of(cls, base_url: str) -> Scrape:
        response = request(base_url + "/metrics")
        assert response.status == 200, response.text
        return cls(response.text)

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]

    def by(self, name: str, label: str, **where: str) -> dict[str, float]:
        """Every sample of `name` whose other labels are `where`, by the value of its
        label `label`; `ValueError` if two such samples share that value."""
        found: dict[str, float] = {}
        for (sample, labels), value in self.samples.items():
            named = dict(labels)
            if sample != name or {k: named.get(k) for k in where} != where:
                continue
            if named[label] in found:
                raise ValueError(f"{name} has several samples of {label}={named[label]}: "
                                 "say which in `where`")
            found[named[label]] = value
        return found
