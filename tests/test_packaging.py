"""The project installs as a wheel that carries its grammar and adapters, and runs as `cep`."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out),
               str(ROOT)]
    if _can_build_offline():
        command.insert(4, "--no-build-isolation")
    subprocess.run(command, check=True, capture_output=True, text=True)
    (found,) = out.glob("cep-*.whl")
    return found


def _can_build_offline() -> bool:
    """setuptools here can build wheels itself (>= 70.1, or with the `wheel` package)."""
    try:
        import setuptools
    except ImportError:
        return False
    major, minor = (int(part) for part in setuptools.__version__.split(".")[:2])
    try:
        import wheel  # noqa: F401
        return True
    except ImportError:
        return (major, minor) >= (70, 1)


def test_wheel_holds_grammar_and_adapters_as_real_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "cep/grammar/cep.lark" in names
    assert "cep/adapters/bus.py" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_wheel_finds_its_grammar(wheel, tmp_path):
    """Unpacked away from the checkout, the package parses and checks a rule file."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    rules = tmp_path / "home.epl"
    rules.write_text("CREATE EVENT A (x INT) FROM TOPIC 'a';\nSELECT x FROM A(x > 1);\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import cep, sys; assert cep.__file__.startswith(sys.argv[1]), cep.__file__; "
            "from cep.cli import main; raise SystemExit(main(['check', sys.argv[2]]))")
    result = subprocess.run([sys.executable, "-c", code, str(site), str(rules)], cwd=tmp_path,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "1 file, 1 rule: 0 errors, 0 warnings" in result.stderr


def test_python_m_cep_runs():
    result = subprocess.run([sys.executable, "-m", "cep", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert "check" in result.stdout and "replay" in result.stdout
