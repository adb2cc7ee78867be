"""Shared fixtures: TensorFlow / Keras for the parity tests; ``tier`` runs a test under both kernel tiers.

The parity tests run wherever TensorFlow is installed and skip, with a reason,
where it is not. With ``NUMBANET_REQUIRE_TF=1`` (set by ``.ci/run``) a missing
TensorFlow is a failure instead: CI installs it with the ``test`` extra, so a
skip there would mean the parity tests silently stopped running.
"""
import os

import pytest
from hypothesis import settings

REQUIRE_TF_VAR = "NUMBANET_REQUIRE_TF"

# ``.ci/run`` sets NUMBANET_HYPOTHESIS_PROFILE=ci: every property test draws the same examples on
# every run (derandomized, no example database), so a CI verdict does not depend on the random
# draw; a plain ``pytest`` run explores new examples each time and keeps failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("NUMBANET_HYPOTHESIS_PROFILE"):
    settings.load_profile(os.environ["NUMBANET_HYPOTHESIS_PROFILE"])


def tf_required() -> bool:
    """True when a missing TensorFlow must fail the run (``NUMBANET_REQUIRE_TF=1``)."""
    return os.environ.get(REQUIRE_TF_VAR, "") == "1"


def import_tensorflow():
    """The ``tensorflow`` module; skips the calling test when it is missing, or fails it in CI."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import tensorflow
    except ImportError as exc:
        if tf_required():
            pytest.fail(f"TensorFlow cannot be imported ({exc}) but {REQUIRE_TF_VAR}=1: the Keras parity "
                        f"tests must run here. Install it with pip install -e '.[test]'.", pytrace=False)
        pytest.skip(f"TensorFlow is not installed ({exc}); the Keras parity tests need it "
                    f"(pip install -e '.[test]')")
    return tensorflow


@pytest.fixture(scope="session")
def tf():
    """The ``tensorflow`` module (see ``import_tensorflow``)."""
    return import_tensorflow()


@pytest.fixture(scope="session")
def keras(tf):
    """Keras 3, as TensorFlow ships it; an older Keras fails the test (parity is with Keras 3)."""
    import keras
    assert keras.__version__.startswith("3"), f"the parity tests compare with Keras 3, found {keras.__version__}"
    return keras


@pytest.fixture(params=["fast", "reference"])
def tier(request):
    """Run the test twice, once inside ``nb.kernels("fast")`` and once inside ``nb.kernels("reference")``.

    A module applies it to all its tests with ``pytestmark = pytest.mark.usefixtures("tier")``,
    one test with ``@pytest.mark.usefixtures("tier")``. Function-scoped, so the tier is set
    for exactly the test's call (a Hypothesis test runs all its examples under it). Both
    tiers must satisfy the same assertions: each is the other's test.
    """
    import numbanet as nb
    with nb.kernels(request.param):
        yield request.param

# The suite's routes are the fixed heuristics': a plan file that `numbanet tune` left in
# the user's cache folder must not change which route a test sees. tests/test_planner.py
# sets the mode it tests.
os.environ.setdefault("NUMBANET_PLANNING", "off")


@pytest.fixture
def two_threads():
    """numbanet's batch split on 2 threads for one test, the previous count restored after."""
    from numbanet.fast import parallel
    threads = parallel.num_threads()
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(threads)


@pytest.fixture
def plan_cache(tmp_path, monkeypatch):
    """A fresh cache folder for the route planner's plan file, planning state forgotten before and
    after, 2 threads (the planner's tests)."""
    from numbanet.fast import parallel, planner
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NUMBANET_PLANNING", raising=False)
    threads = parallel.num_threads()
    parallel.set_num_threads(2)
    planner.reset()
    yield tmp_path / "numbanet"
    planner.reset()
    parallel.set_num_threads(threads)
