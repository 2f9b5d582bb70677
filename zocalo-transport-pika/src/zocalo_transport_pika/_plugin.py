"""Hook implementations that zocalo-transport-pika registers with Zocalo.

NOTE: nothing is registered yet; a distribution registers only what fully works.
"""
