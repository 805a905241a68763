"""The project installs as a wheel that carries its grammar and adapters, and runs as `cep`."""

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.packaging, pytest.mark.slow]


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


def checkout_packages() -> set[str]:
    """Every package of the source tree, named as installed."""
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "cep").rglob("__init__.py")}
    return found | {"cep.adapters", "cep.grammar"}


def test_the_build_lists_every_package_of_the_tree():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(config["tool"]["setuptools"]["packages"]) == checkout_packages()


def test_wheel_holds_grammar_and_adapters_as_real_files(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "cep/grammar/cep.lark" in names
    assert "cep/language/parser.py" in names
    for adapter in sorted((ROOT / "adapters").glob("*.py")):
        assert f"cep/adapters/{adapter.name}" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_wheel_ships_the_product_only(wheel):
    """Benchmarks, tests and rules stay in the checkout."""
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"cep", "cep-0.1.0.dist-info"}
    names = zipfile.ZipFile(wheel).namelist()
    packages = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith(".py")}
    assert packages == checkout_packages() - {"cep.grammar"}


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


def test_installed_wheel_imports_every_module(wheel, tmp_path):
    """Away from the checkout, every module of the wheel imports (no module reaches for a
    file or package that only a checkout has)."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__")
                     for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")
                     and not n.endswith("__main__.py"))
    code = ("import importlib, sys\n"
            "for name in sys.argv[2:]:\n"
            "    module = importlib.import_module(name)\n"
            "    assert module.__file__.startswith(sys.argv[1]), (name, module.__file__)\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "-c", code, str(site), *modules], cwd=tmp_path,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_python_m_cep_runs():
    result = subprocess.run([sys.executable, "-m", "cep", "--help"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert "check" in result.stdout and "replay" in result.stdout
