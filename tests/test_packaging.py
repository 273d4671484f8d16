# SPDX-License-Identifier: AGPL-3.0-or-later
# Copyright (C) 2026  heretic-teacher-forced-kl contributors

"""
What the package declares and ships: its dependencies against its imports,
`heretic-kl --version`, `--print-config` and the usage line of `--help`.
`scripts/check_distribution.sh` checks the built wheel and sdist themselves.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import packages_distributions, version
from importlib.resources import files
from pathlib import Path

from packaging.requirements import Requirement

from heretic_teacher_forced_kl.cli.launcher.options import build_parser

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRECTORY = REPOSITORY_ROOT / "src" / "heretic_teacher_forced_kl"
PACKAGE_NAME = "heretic_teacher_forced_kl"

#: Extras that serve the repository (tests, scripts), not users of the package.
REPOSITORY_EXTRAS = ("test",)


def normalized(name: str) -> str:
    """A distribution name in its normalized form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def project_table() -> dict:
    with (REPOSITORY_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]


def declared_distributions() -> set[str]:
    """The distributions that the package and its user-facing extras declare."""
    project = project_table()
    requirements = list(project["dependencies"])
    for extra, extra_requirements in project["optional-dependencies"].items():
        if extra not in REPOSITORY_EXTRAS:
            requirements.extend(extra_requirements)
    return {normalized(Requirement(text).name) for text in requirements}


def imported_top_level_modules() -> dict[str, list[str]]:
    """Every absolute import under src/, by top-level module, with where it occurs."""
    modules: dict[str, list[str]] = {}
    for path in sorted(PACKAGE_DIRECTORY.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                location = f"{path.relative_to(REPOSITORY_ROOT)}:{node.lineno}"
                modules.setdefault(name.split(".")[0], []).append(location)
    return modules


def test_every_third_party_import_is_a_declared_dependency() -> None:
    declared = declared_distributions()
    providers = packages_distributions()
    undeclared = []
    for module, locations in imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module == PACKAGE_NAME:
            continue
        # tomli is imported only where tomllib (Python 3.11+) is missing.
        distributions = {normalized(name) for name in providers.get(module, [module])}
        if not distributions & declared:
            undeclared.append(f"{module} ({', '.join(locations)})")
    assert not undeclared, "imported but not declared: " + "; ".join(undeclared)


def test_tomli_is_declared_for_python_before_3_11_only() -> None:
    (requirement,) = [
        Requirement(text)
        for text in project_table()["dependencies"]
        if Requirement(text).name == "tomli"
    ]
    assert requirement.marker is not None
    assert requirement.marker.evaluate({"python_version": "3.10"})
    assert not requirement.marker.evaluate({"python_version": "3.11"})


def test_package_ships_type_information_and_the_default_config() -> None:
    package = files(PACKAGE_NAME)
    assert package.joinpath("py.typed").is_file()
    with (REPOSITORY_ROOT / "pyproject.toml").open("rb") as file:
        package_data = tomllib.load(file)["tool"]["setuptools"]["package-data"]
    assert "py.typed" in package_data[PACKAGE_NAME]
    # The installed package's copy is the top-level file (an editable install
    # links to it; a wheel holds a copy, see the next test).
    assert (
        package.joinpath("config.default.toml").read_bytes()
        == (REPOSITORY_ROOT / "config.default.toml").read_bytes()
    )


#: What the sdist is built from (MANIFEST.in and pyproject.toml say what it holds).
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")


def build(backend_call: str, source: Path, output: Path) -> Path:
    """Runs a setuptools build hook in `source`; returns the file it built in `output`."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta; "
            f"print(build_meta.{backend_call}(sys.argv[1]))",
            str(output),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return output / result.stdout.strip().splitlines()[-1]


def test_sdist_and_wheel_ship_the_top_level_config_file(tmp_path: Path) -> None:
    # As pip builds from the index: the sdist from the repository, the wheel
    # from the unpacked sdist.
    source = tmp_path / "source"
    source.mkdir()
    for name in (*BUILD_INPUTS, "config.default.toml"):
        shutil.copy(REPOSITORY_ROOT / name, source / name)
    shutil.copytree(
        PACKAGE_DIRECTORY,
        source / "src" / PACKAGE_NAME,
        ignore=shutil.ignore_patterns("__pycache__", "config.default.toml"),
    )
    sdist_path = build("build_sdist", source, tmp_path / "dist")
    expected = (REPOSITORY_ROOT / "config.default.toml").read_bytes()
    with tarfile.open(sdist_path) as sdist:
        sdist.extractall(tmp_path / "unpacked", filter="data")
        top = [
            name for name in sdist.getnames() if name.endswith("config.default.toml")
        ]
    assert len(top) == 1 and top[0].count("/") == 1
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    assert (unpacked / "config.default.toml").read_bytes() == expected
    wheel_path = build("build_wheel", unpacked, tmp_path / "wheel")
    with zipfile.ZipFile(wheel_path) as wheel:
        assert wheel.read(f"{PACKAGE_NAME}/config.default.toml") == expected


def test_python_version_classifiers_match_heretic_llm_1_4_0() -> None:
    classifiers = project_table()["classifiers"]
    versions = [
        classifier.rsplit(" :: ", 1)[1]
        for classifier in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", classifier)
    ]
    assert versions == ["3.10", "3.11", "3.12"]
    assert project_table()["requires-python"] == ">=3.10"


def run_heretic_kl(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Runs `heretic-kl` in a subprocess, without a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "heretic_teacher_forced_kl.cli", *arguments],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_version_names_this_package_and_heretic() -> None:
    result = run_heretic_kl("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"heretic-teacher-forced-kl {version('heretic-teacher-forced-kl')}, "
        f"heretic-llm {version('heretic-llm')}\n"
    )


def test_version_and_print_config_load_neither_heretic_nor_torch() -> None:
    code = (
        "import sys\n"
        "from heretic_teacher_forced_kl.cli.main import main\n"
        "assert main(['--version']) == 0\n"
        "assert main(['--print-config']) == 0\n"
        "print(sorted({'heretic', 'torch'} & set(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_print_config_prints_the_shipped_settings_file() -> None:
    result = run_heretic_kl("--print-config")
    assert result.returncode == 0, result.stderr
    shipped = files(PACKAGE_NAME).joinpath("config.default.toml").read_text("utf-8")
    assert result.stdout == shipped
    assert "kl_tokens" in tomllib.loads(result.stdout)["scorer"]["TeacherForcedKL"]
    # A user who installed the package from PyPI has no repository to look in.
    for repository_path in ("src/", "docs/", "tests/", ".py"):
        assert repository_path not in result.stdout


def test_usage_shows_model_last_compare_and_the_informational_options() -> None:
    usage, *_ = build_parser().format_help().split("\n\n", 1)
    lines = usage.splitlines()
    assert lines[0] == (
        "usage: heretic-kl [heretic-kl options] [heretic options] MODEL"
    )
    assert "heretic-kl compare ORIGINAL CANDIDATE" in lines[1]
    assert "--version" in lines[2] and "--print-config" in lines[2]
    help_text = build_parser().format_help()
    assert "comes last" in help_text


# The README is the package's page on PyPI, where relative links are dead.

REPOSITORY_URL = (
    "https://github.com/heretic-teacher-forced-kl/heretic-teacher-forced-kl"
)
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def readme_links() -> list[str]:
    return MARKDOWN_LINK.findall((REPOSITORY_ROOT / "README.md").read_text("utf-8"))


def test_readme_links_are_absolute() -> None:
    relative = [link for link in readme_links() if not re.match(r"https?://|#", link)]
    assert not relative, f"relative links, dead on PyPI: {relative}"


def test_readme_links_into_the_repository_name_existing_files() -> None:
    assert project_table()["urls"]["Homepage"] == REPOSITORY_URL
    prefix = re.compile(re.escape(REPOSITORY_URL) + r"/(blob|tree)/main/(.+)")
    missing = []
    checked = 0
    for link in readme_links():
        match = prefix.fullmatch(link.split("#", 1)[0])
        if match is None:
            continue
        checked += 1
        kind, path = match.groups()
        target = REPOSITORY_ROOT / path
        if not (target.is_dir() if kind == "tree" else target.is_file()):
            missing.append(link)
    assert checked >= 5
    assert not missing, f"links to missing repository paths: {missing}"
