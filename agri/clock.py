"""The platform's time zone: every "day" (rollups, series buckets, advice) is
a calendar day there, and every time the API shows carries its offset."""

from __future__ import annotations

from zoneinfo import ZoneInfo

TIME_ZONE = "Asia/Tokyo"
TZ = ZoneInfo(TIME_ZONE)
UTC_OFFSET_S = 9 * 3600  # Asia/Tokyo has kept UTC+9 without daylight saving time since 1952
