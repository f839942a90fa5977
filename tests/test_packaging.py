"""The two ways to install agree: environment.yml lists what pyproject.toml does, and the README's set-up
commands are the ones CI runs."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO = 'python3 -m pip install -e ".[all]" && perfkit demo'
TEST = 'python3 -m pip install -e ".[all]" && python3 -m pytest'
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(\[[^\]]*\])?\s*(?:>=\s*([0-9][^,;\s]*))?\s*$")


def _name(name: str) -> str:
    """PEP 503 normalized name (huggingface_hub == huggingface-hub)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(requirement: str) -> dict[str, str | None]:
    """``{name: minimum version}``; a dask extra brings the packages conda ships separately."""
    match = _REQUIREMENT.match(requirement)
    assert match, f"cannot read requirement {requirement!r} (write name[extras]>=version)"
    name, extras, version = _name(match[1]), match[2] or "", match[3]
    out = {name: version}
    if name == "dask" and "distributed" in extras:
        out["distributed"] = version
    return out


def pyproject_requirements() -> dict[str, str | None]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    own = _name(project["name"])
    out: dict[str, str | None] = {}
    for requirement in [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]:
        if _name(re.split(r"[\[<>=\s]", requirement, maxsplit=1)[0]) == own:
            continue  # "all" = perfkit[server,sweep,...]
        for name, version in _parse(requirement).items():
            assert out.get(name, version) == version, f"{name} has two minimum versions in pyproject.toml"
            out[name] = version
    return out


def environment_requirements() -> dict[str, str | None]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    out = {}
    for entry in env["dependencies"]:
        if isinstance(entry, dict):  # the pip section installs perfkit itself
            assert entry == {"pip": ["-e ."]}, entry
            continue
        out.update(_parse(entry))
    for tool in ("python", "pip"):
        out.pop(tool, None)
    return out


def test_parse_requirements():
    assert _parse("dask[dataframe,distributed]>=2024.1") == {"dask": "2024.1", "distributed": "2024.1"}
    assert _parse("huggingface_hub>=0.20") == {"huggingface-hub": "0.20"}
    assert _parse("pytest") == {"pytest": None}


def test_environment_yml_matches_pyproject():
    assert environment_requirements() == pyproject_requirements()


def test_every_package_is_listed_in_pyproject():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.relative_to(REPO).parent.parts) for p in (REPO / "perfkit").rglob("__init__.py")}
    assert found <= listed, f"sub-packages missing from [tool.setuptools] packages: {sorted(found - listed)}"
    assert "perfkit.hardware" in listed and config["package-dir"]["perfkit.hardware"] == "hardware"


def _ci_command() -> list[str]:
    """The install-and-test line of .ci/run, without its quiet and parallel flags (-q, -n N)."""
    lines = [line for line in (REPO / ".ci" / "run").read_text().splitlines()
             if "pip install" in line and not line.lstrip().startswith("#")]
    assert len(lines) == 1, lines
    words, out = shlex.split(lines[0]), []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "-n":
            skip = True
        elif word != "-q":
            out.append(word)
    return out


def test_ci_runs_the_readme_test_command():
    assert _ci_command() == shlex.split(TEST)


def shell_commands_under(heading: str, markdown: str) -> list[str]:
    """Command lines of the fenced blocks in the section titled ``heading`` (comments and prompts dropped)."""
    commands, in_section, fence = [], False, None
    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            continue
        if fence is None:
            if re.match(r"#+ ", stripped):
                in_section = stripped.lstrip("#").strip().lower() == heading.lower()
            continue
        if in_section and fence in ("", "bash", "sh", "shell", "console"):
            command = stripped.removeprefix("$ ")
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_shell_commands_under():
    text = ("# perfkit\n## Quick start\n```bash\n# the demo\n$ make demo\n```\nthen\n```\nmake test\n```\n"
            "## Next\n```bash\nmake other\n```\n")
    assert shell_commands_under("Quick start", text) == ["make demo", "make test"]


def test_readme_quick_start_has_the_two_commands():
    readme = REPO / "README.md"
    assert readme.is_file(), "README.md is missing (the lead writes its core before merging)"
    assert shell_commands_under("Quick start", readme.read_text()) == [DEMO, TEST]
