"""What every delivery channel (alerts/email.py, alerts/line.py) raises when
a message could not be handed over."""

from __future__ import annotations


class DeliveryError(Exception):
    """The channel did not take the message.

    ``permanent`` is True when it refused it for good (an SMTP 5xx reply, a
    LINE 400 or 401): sending it again cannot help, the delivery is marked
    failed. False when it may pass later (connection refused, a timeout, an
    SMTP 4xx reply, LINE 429 or 5xx): the delivery is tried again.
    """

    def __init__(self, message: str, *, permanent: bool):
        super().__init__(message)
        self.permanent = permanent
