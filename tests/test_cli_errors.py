"""How `main` ends a command that fails: an internal error (a bug) is one line and exit 3,
its traceback only with `--debug`; Ctrl-C and a closed pipe stay as they were."""

from __future__ import annotations

import pytest

import cep.cli.rules
from cep.cli import main
from cep.cli.common import EXIT_INTERNAL


def _crash(*args, **kwargs):
    raise RuntimeError("the checker fell over\nwith a second line")


@pytest.fixture
def rules(tmp_path):
    path = tmp_path / "r.epl"
    path.write_text("CREATE EVENT A (x INT) FROM TOPIC 'a';\nSELECT x FROM A;\n")
    return str(path)


CASES = [
    # (id, exception raised inside the command, extra options, exit status, stderr holds)
    ("bug", RuntimeError("the checker fell over\nwith a second line"), [], EXIT_INTERNAL,
     "cep: internal error: RuntimeError: the checker fell over with a second line; please "
     "report it to the cep developers with the command you ran"),
    ("recursion", RecursionError("maximum recursion depth exceeded"), [], EXIT_INTERNAL,
     "cep: internal error: RecursionError: maximum recursion depth exceeded;"),
    ("no-message", KeyError(), [], EXIT_INTERNAL, "cep: internal error: KeyError; please"),
    ("broken-pipe", BrokenPipeError(), [], 0, ""),
]


@pytest.mark.parametrize("name, exc, options, status, said", CASES, ids=[c[0] for c in CASES])
def test_a_failing_command_ends_as_documented(name, exc, options, status, said, rules,
                                              monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(cep.cli.rules, "load_rules", fail)
    if name == "broken-pipe":
        monkeypatch.setattr("cep.cli.app._quiet_stdout", lambda: None)
    assert main([*options, "check", rules]) == status
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err
    if status == EXIT_INTERNAL:
        assert err.count("\n") == 1  # one line


def test_debug_adds_the_traceback(rules, monkeypatch, capsys):
    monkeypatch.setattr(cep.cli.rules, "load_rules", _crash)
    assert main(["--debug", "check", rules]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "in _crash" in err
    assert err.rstrip().splitlines()[-1].startswith("cep: internal error: RuntimeError:")


def test_ctrl_c_is_not_an_internal_error(rules, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cep.cli.rules, "load_rules", interrupted)
    with pytest.raises(KeyboardInterrupt):  # Python then exits 130, as before
        main(["check", rules])


def test_a_usage_error_is_still_exit_2(tmp_path, capsys):
    assert main(["check", str(tmp_path / "missing.epl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cep: error: cannot read") and "internal" not in err


def test_a_long_reason_is_cut(rules, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise ValueError("x" * 10_000)

    monkeypatch.setattr(cep.cli.rules, "load_rules", fail)
    assert main(["check", rules]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert len(err) < 500 and "x..." in err
