"""What one database transaction of ingest holds, and the messages it acknowledges."""

from __future__ import annotations

from dataclasses import dataclass, field

from agri.ingest.validate import Row

# received_at (s), topic, device_id, reason, record index, payload
RejectRow = tuple[float, str, str | None, str, int | None, bytes]
# device_id, time (s), kind, body (JSON text), received (s)
EventRow = tuple[str, float, str, str, float]
# drone_id, time (s), kind, field_id, body (JSON text), received (s)
FlightRow = tuple[str, float, str, str | None, str, float]


@dataclass(slots=True)
class Batch:
    rows: list[Row] = field(default_factory=list)
    rejects: list[RejectRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    flights: list[FlightRow] = field(default_factory=list)
    acks: list[tuple[int, int, int]] = field(default_factory=list)  # mid, qos, connection
    messages: int = 0
    first_received: float = 0.0
    publish_times: list[float] = field(default_factory=list)  # for benchmarks (optional)

    def __len__(self) -> int:
        return self.messages
