"""Prometheus metrics at `/metrics`: request counts and latencies by route template and status.

Route templates (`/api/v1/domains/{id}`), never raw paths, keep the label set small and free of
ids. With several HTTP workers each process reports its own counters.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

REQUESTS = Counter("conduit_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "conduit_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def route_template(scope: MutableMapping[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def observe(scope: MutableMapping[str, Any], status: int, seconds: float, route: str | None = None) -> None:
    route = route or route_template(scope)
    REQUESTS.labels(scope["method"], route, str(status)).inc()
    LATENCY.labels(scope["method"], route).observe(seconds)


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
