"""Hook implementations that zocalo-services-contrib registers with Zocalo.

NOTE: nothing is registered yet; a distribution registers only what fully works.
"""
