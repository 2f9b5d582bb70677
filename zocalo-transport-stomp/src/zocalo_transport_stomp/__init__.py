"""ActiveMQ transport for Zocalo, on stomp.py."""

__all__: list[str] = []
