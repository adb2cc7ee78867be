"""Demos of the classic exercises; each module has ``main(argv=None)`` and a one-line ``SUMMARY``.

``numbanet demo NAME`` runs one; ``numbanet demo --list`` lists them.
"""
DEMOS = {
    "sine": "numbanet.demos.sine",
    "iris": "numbanet.demos.iris",
    "cnn": "numbanet.demos.cnn",
    "autoencoder": "numbanet.demos.autoencoder",
    "lyrics": "numbanet.demos.lyrics",
    "optimizers": "numbanet.demos.optimizers",
    "init": "numbanet.demos.init",
    "textcnn": "numbanet.demos.textcnn",
    "batchnorm": "numbanet.demos.batchnorm",
}


def add_output_options(parser, verbose=True):
    """The options every demo shares: ``--verbose`` (Keras's 0/1/2, default 2) and ``--out``."""
    if verbose:
        parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                            help="training output: 0 quiet, 1 a progress bar per epoch, 2 one line per epoch "
                                 "(default: %(default)s)")
    parser.add_argument("--out", default="numbanet-out", help="folder for the PNG files (default: ./%(default)s)")
