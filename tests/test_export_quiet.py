"""export.quiet: C++ output written straight to fd 2 is held back, and shown when the step fails."""

import os

import pytest

from export.quiet import console, held_stderr, quiet


def test_held_output_is_dropped_on_success_and_replayed_on_failure(capfd):
    with held_stderr(True):
        os.write(2, b"I0000 reader.cc:83] Reading SavedModel\n")
        console().write("a progress bar\n")  # bars still reach the real stderr
    err = capfd.readouterr().err
    assert "Reading SavedModel" not in err and "a progress bar" in err
    with pytest.raises(RuntimeError), held_stderr(True):
        os.write(2, b"E0000 converter.cc:1] why it failed\n")
        raise RuntimeError("conversion failed")
    assert "why it failed" in capfd.readouterr().err
    os.write(2, b"after\n")  # fd 2 is back
    assert capfd.readouterr().err == "after\n"


def test_quiet_follows_the_tensorflow_log_level(monkeypatch, capfd):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    assert not quiet()
    with held_stderr():  # not quiet: nothing is held
        os.write(2, b"shown\n")
    assert capfd.readouterr().err == "shown\n"
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    assert quiet()
