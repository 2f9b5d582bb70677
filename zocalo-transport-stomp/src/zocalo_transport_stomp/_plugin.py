"""Hook implementations that zocalo-transport-stomp registers with Zocalo.

NOTE: nothing is registered yet; a distribution registers only what fully works.
"""
