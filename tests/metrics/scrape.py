"""Scraping a stack's `/metrics` (and a worker's metrics port) and reading samples out of it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

TOKEN = "scrape-token"


class Scrape:
    """One scrape: `value(sample_name, **labels)`, 0 when the sample is absent."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def minus(self, before: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)


def scrape(base_url: str, token: str = TOKEN) -> Scrape:
    response = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def scrape_until(base_url: str, settled: Callable[[Scrape], bool], timeout: float = 15) -> Scrape:
    """Scrape until `settled` holds (counts sent after the answer: webhook attempts, a batch's last item)."""
    deadline = time.monotonic() + timeout
    while True:
        current = scrape(base_url)
        if settled(current) or time.monotonic() > deadline:
            return current
        time.sleep(0.1)
