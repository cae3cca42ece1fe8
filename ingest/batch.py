"""What one database transaction of ingest holds, and the messages it acknowledges."""

from __future__ import annotations

from dataclasses import dataclass, field

from agri.devices.receipts import Request
from agri.ingest.rejects import RejectRow
from agri.ingest.validate import Row

# device_id, time (s), kind, body (JSON text), received (s)
EventRow = tuple[str, float, str, str, float]
# drone_id, time (s), kind, field_id, body (JSON text), received (s)
FlightRow = tuple[str, float, str, str | None, str, float]
# A message as received, to reject it whole: received (s), topic, device_id, payload
Source = tuple[float, str, str | None, bytes]


@dataclass(slots=True)
class Batch:
    rows: list[Row] = field(default_factory=list)
    rejects: list[RejectRow] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    flights: list[FlightRow] = field(default_factory=list)
    acks: list[tuple[int, int, int]] = field(default_factory=list)  # mid, qos, connection
    # Delivery receipts asked for (device id, request), answered after commit.
    receipts: list[tuple[str, Request]] = field(default_factory=list)
    messages: int = 0
    first_received: float = 0.0
    # Per message, in order: where its rows, rejects, events and flights end,
    # and the message itself. Lets the writer store a batch message by message
    # when the database refuses one of them.
    ends: list[tuple[int, int, int, int]] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)

    def __len__(self) -> int:
        return self.messages

    def end_message(self, source: Source) -> None:
        """Mark the end of one message's share of the batch."""
        self.ends.append((len(self.rows), len(self.rejects), len(self.events),
                          len(self.flights)))
        self.sources.append(source)

    def part(self, first: int, last: int) -> Batch:
        """The share of messages ``first`` .. ``last - 1`` (per ``end_message``)."""
        start = self.ends[first - 1] if first else (0, 0, 0, 0)
        stop = self.ends[last - 1]
        return Batch(rows=self.rows[start[0]:stop[0]], rejects=self.rejects[start[1]:stop[1]],
                     events=self.events[start[2]:stop[2]],
                     flights=self.flights[start[3]:stop[3]], messages=last - first,
                     ends=[tuple(e - s for e, s in zip(end, start, strict=True))
                           for end in self.ends[first:last]],
                     sources=self.sources[first:last])
