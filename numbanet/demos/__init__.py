"""Demos of the classic exercises; each module has ``main(argv=None)`` and a one-line ``SUMMARY``.

``numbanet demo NAME`` runs one; ``numbanet demo --list`` lists them.
"""
DEMOS = {
    "sine": "numbanet.demos.sine",
    "iris": "numbanet.demos.iris",
    "cnn": "numbanet.demos.cnn",
    "autoencoder": "numbanet.demos.autoencoder",
    "lyrics": "numbanet.demos.lyrics",
}
