"""`agri bench alerts` in small: every reading stored, every crossing
reading's alert emailed and accepted by the SMTP server, and the figures
as one JSON object on the last line."""

from __future__ import annotations

import argparse
import json

from agri.deploy import bench_alerts


def test_tiny_bench_emails_every_crossing(capsys):
    parser = argparse.ArgumentParser()
    bench_alerts.add_arguments(parser)
    args = parser.parse_args(["--devices", "200", "--duration", "20", "--interval", "10",
                              "--crossing", "0.05", "--publishers", "2"])
    assert bench_alerts.run(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["bench"] == "alerts"
    assert report["readings"] == report["published"] == 400
    assert report["alerts"] == report["crossing"] == report["emails_received"] == 10
    assert 0 < report["delay_p50_s"] <= report["delay_p99_s"] < 10
    assert report["baseline_p50_s"] > 0 and report["ratio_p50"] is not None
