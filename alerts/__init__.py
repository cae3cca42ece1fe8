"""Alerts: rules that watch fields and devices, and the messages they send
(email over SMTP, LINE through the Messaging API)."""
