"""The fast tier's functions, called by the engine's Functions through ``engine.tiers.active()``.

Same names, signatures and results as ``numbanet/reference/tier.py`` (whose
docstrings give the math and the shapes); here each one picks a route and runs it.
"""
