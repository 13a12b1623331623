"""Packaging: every subpackage is listed in pyproject (a wheel would silently miss it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    dirs = conf["package-dir"]
    found = set()
    for name, folder in dirs.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    missing = sorted(found - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_console_script_and_module_entry() -> None:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert conf["project"]["scripts"]["softlabels"] == "softlabels.cli.app:main"
    assert (ROOT / "softlabels" / "__main__.py").exists()


def test_every_code_folder_is_a_regular_package() -> None:
    # A folder of modules without __init__.py is a namespace package: setuptools' package
    # list skips it and a wheel would ship without it.
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    missing = []
    for folder in conf["package-dir"].values():
        for py in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in py.parts and not (py.parent / "__init__.py").exists():
                missing.append(str(py.parent.relative_to(ROOT)))
    assert not missing, f"add __init__.py to: {sorted(set(missing))}"
