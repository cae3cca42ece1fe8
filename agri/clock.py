"""The platform's time zone: every "day" (rollups, series buckets, advice) is
a calendar day there, and every time the API shows carries its offset."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

TIME_ZONE = "Asia/Tokyo"
TZ = ZoneInfo(TIME_ZONE)
UTC_OFFSET_S = 9 * 3600  # Asia/Tokyo has kept UTC+9 without daylight saving time since 1952


def today_local() -> date:
    """Today's date in the platform's time zone."""
    return datetime.now(TZ).date()
