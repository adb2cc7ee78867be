"""The switch's surface: ``numbanet demo NAME --kernels fast|reference`` and nb.set_kernels's errors."""
import sys
import types

import pytest

import numbanet as nb
from numbanet import cli


@pytest.fixture
def recording_demo(monkeypatch):
    """A demo module that records the active tier and the argv it was given; no restart, no threads."""
    seen = {}
    demo = types.ModuleType("numbanet_test_recording_demo")
    demo.SUMMARY = "records the tier"

    def add_arguments(parser):
        parser.add_argument("--epochs", type=int, default=1)

    def main(argv=None):
        seen["tier"] = nb.get_kernels()
        seen["argv"] = list(argv)

    demo.add_arguments, demo.main = add_arguments, main
    monkeypatch.setitem(sys.modules, demo.__name__, demo)
    monkeypatch.setitem(cli.DEMOS, "recording", demo.__name__)
    monkeypatch.setenv("NUMBANET_KEEP_BLAS", "1")              # no restart onto other BLAS kernels
    monkeypatch.setattr(nb.utils, "set_num_threads", lambda *a: 1)
    monkeypatch.setattr(nb.utils, "tune_malloc", lambda *a: None)
    return seen


@pytest.mark.parametrize("argv, tier", [
    (["demo", "recording", "--kernels", "reference", "--epochs", "2"], "reference"),
    (["demo", "recording", "--epochs", "2", "--kernels=reference"], "reference"),
    (["demo", "recording", "--epochs", "2"], "fast"),
])
def test_kernels_option_sets_the_tier_for_the_demo_only(recording_demo, argv, tier):
    assert nb.get_kernels() == "fast"
    assert cli.main(argv) == 0
    assert recording_demo == {"tier": tier, "argv": ["--epochs", "2"]}  # the demo never sees --kernels
    assert nb.get_kernels() == "fast"                                     # restored after the demo


def test_kernels_option_rejects_an_unknown_tier(recording_demo, capsys):
    assert cli.main(["demo", "recording", "--kernels", "slow"]) == 2
    err = capsys.readouterr().err
    assert "--kernels" in err and "'fast'" in err and "'reference'" in err
    assert "tier" not in recording_demo


@pytest.mark.parametrize("name", sorted(cli.DEMOS))
def test_every_demo_lists_the_kernels_option(name, capsys):
    assert cli.main(["demo", name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--kernels {fast,reference}" in out


def test_set_kernels_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown tier 'slow'.*'fast', 'reference'"):
        nb.set_kernels("slow")
    with pytest.raises(TypeError, match="must be a str"):
        nb.set_kernels(1)
    assert nb.get_kernels() == "fast"


def test_kernels_context_restores_the_tier_after_an_error():
    with pytest.raises(ZeroDivisionError):
        with nb.kernels("reference"):
            assert nb.get_kernels() == "reference"
            1 / 0
    assert nb.get_kernels() == "fast"
