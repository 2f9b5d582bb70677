"""RabbitMQ transport for Zocalo, on pika."""

__all__: list[str] = []
