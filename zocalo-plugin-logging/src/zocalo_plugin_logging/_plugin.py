"""Hook implementations that zocalo-plugin-logging registers with Zocalo.

NOTE: nothing is registered yet; a distribution registers only what fully works.
"""
