"""What /metrics exposes (Prometheus text format, official client library).

- Requests of this API process: ``agri_http_request_duration_seconds``, a
  histogram by route template (``/api/v1/fields/{field_id}``, never the raw
  path, so that the number of series stays bounded), method and status class
  (``2xx``, ``4xx``, ...); ``agri_http_requests_in_flight``; and
  ``agri_access_log_dropped_total``, access-log rows that could not be kept.
- The ingest workers' counters, which every worker saves in ``ingest_stats``
  (``ingest/stats.py``): ``agri_ingest_<counter>_total``,
  ``agri_ingest_<gauge>`` and the histogram
  ``agri_ingest_reading_age_at_commit_seconds``, by ``worker``. They are
  read from the database at each scrape, so any API process shows all
  workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agri.ingest.service import AGE_BUCKETS
from agri.ingest.stats import COUNTERS, GAUGES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# The route label of a request that matched no route (404s of any path).
UNMATCHED = "<unmatched>"

INGEST_STATS_SQL = "SELECT worker, counters FROM ingest_stats ORDER BY worker"

# No `_created` series beside each counter and histogram: they would double
# the series for nothing a dashboard here uses.
disable_created_metrics()


class HttpMetrics:
    """The request metrics of one application (a registry of its own, so
    that two apps in one process do not share or clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "agri_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, seconds",
            ("route", "method", "status"), buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.in_flight = Gauge("agri_http_requests_in_flight",
                               "Requests being answered now", registry=self.registry)
        self.access_log_dropped = Counter(
            "agri_access_log_dropped", "Access-log rows dropped (queue full or database "
            "unavailable)", registry=self.registry)

    def observe(self, *, route: str, method: str, status: int, duration_s: float) -> None:
        self.latency.labels(route, method if method in METHODS else "other",
                            f"{status // 100}xx").observe(duration_s)


class IngestCollector(Collector):
    """The ingest counters of the rows of ``ingest_stats`` read for one scrape
    (``(worker, counters)`` pairs), or, when the database did not answer,
    only ``agri_ingest_stats_up 0``."""

    def __init__(self, rows: Sequence[tuple[str, dict]] | None) -> None:
        self.rows = rows

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("agri_ingest_stats_up",
                               "1 when the ingest counters could be read from the database")
        up.add_metric((), 0 if self.rows is None else 1)
        yield up
        if self.rows is None:
            return
        for name in COUNTERS:
            family = CounterMetricFamily(f"agri_ingest_{name}", f"Ingest: {name}",
                                         labels=("worker",))
            for worker, counters in self.rows:
                family.add_metric((worker,), float(counters.get(name, 0)))
            yield family
        for name in GAUGES:
            family = GaugeMetricFamily(f"agri_ingest_{name}", f"Ingest: {name}",
                                       labels=("worker",))
            for worker, counters in self.rows:
                family.add_metric((worker,), float(counters.get(name, 0)))
            yield family
        yield self._age_histogram()

    def _age_histogram(self) -> Metric:
        # Workers keep counts per bucket, not their sum: buckets and _count only.
        name = "agri_ingest_reading_age_at_commit_seconds"
        family = Metric(name, "Age of readings when their batch was committed, seconds",
                        "histogram")
        for worker, counters in self.rows or ():
            counts = counters.get("age_histogram") or [0] * len(AGE_BUCKETS)
            total = 0
            for le, n in zip(AGE_BUCKETS, counts, strict=False):
                total += n
                label = "+Inf" if le == float("inf") else f"{le:g}"
                family.add_sample(name + "_bucket", {"worker": worker, "le": label}, total)
            if AGE_BUCKETS[-1] != float("inf"):
                family.add_sample(name + "_bucket", {"worker": worker, "le": "+Inf"}, total)
            family.add_sample(name + "_count", {"worker": worker}, total)
        return family


def exposition(http: HttpMetrics, ingest_rows: Sequence[tuple[str, dict]] | None) -> bytes:
    """The text of one scrape: this process's request metrics and the ingest
    counters of ``ingest_rows`` (None: the database did not answer)."""
    ingest = CollectorRegistry()
    ingest.register(IngestCollector(ingest_rows))
    return generate_latest(http.registry) + generate_latest(ingest)
