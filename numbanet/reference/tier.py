"""The reference tier's functions, called by the engine's Functions through ``engine.tiers.active()``.

Each one is the textbook computation, built from this package's topic modules
(``conv``, ``pooling``, ``linear``, ...); ``numbanet/fast/tier.py`` has the same
names and signatures and gives the same numbers within rounding.
"""
