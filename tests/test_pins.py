"""The pins agree everywhere: requirements.in, requirements.lock, pyproject.toml, envs/*.yaml."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)")


def _pins(lines):
    pins = {}
    for line in lines:
        if match := PIN.match(line.strip()):
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def _pyproject_pins():
    text = (REPO / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    return _pins(item.strip().strip('",') for item in block.splitlines())


def test_every_direct_dependency_is_pinned_and_locked():
    direct = _pins((REPO / "requirements.in").read_text().splitlines())
    lock = _pins((REPO / "requirements.lock").read_text().splitlines())
    assert direct, "requirements.in has no pins"
    for name, version in direct.items():
        assert lock.get(name) == version, f"{name}: requirements.in {version}, requirements.lock {lock.get(name)}"


def test_pyproject_matches_requirements():
    direct = _pins((REPO / "requirements.in").read_text().splitlines())
    for name, version in _pyproject_pins().items():
        assert direct.get(name) == version, f"{name}: pyproject {version}, requirements.in {direct.get(name)}"


def test_conda_envs_match_pip_pins():
    direct = _pins((REPO / "requirements.in").read_text().splitlines())
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip_lines = [d for dep in spec["dependencies"] if isinstance(dep, dict) for d in dep.get("pip", [])]
        pins = _pins(pip_lines)
        assert pins, f"{env.name} pins nothing"
        for name, version in pins.items():
            assert direct.get(name) == version, f"{env.name}: {name}=={version}, requirements.in {direct.get(name)}"
        assert set(_pyproject_pins()) <= set(pins), f"{env.name} misses a runtime dependency"


def test_every_rule_names_a_pinned_env():
    rules = (REPO / "workflow" / "rules").glob("*.smk")
    text = "\n".join(path.read_text() for path in rules)
    n_rules = len(re.findall(r"^\s*rule (?!figures:|all:)\w+:", text, flags=re.M))
    n_conda = len(re.findall(r'^\s*conda:\s*\n\s*"\.\./\.\./envs/\w+\.yaml"', text, flags=re.M))
    assert n_rules == n_conda > 10


def test_scikit_image_dependencies_are_locked():
    """scikit-image's own requirements (imageio, lazy-loader, networkx, ...) are pinned in the lock too."""
    from importlib.metadata import requires

    lock = _pins((REPO / "requirements.lock").read_text().splitlines())
    lock = {name.replace(".", "-"): version for name, version in lock.items()}
    needed = [re.match(r"[A-Za-z0-9_.\-]+", r)[0] for r in requires("scikit-image") if "extra ==" not in r]
    assert needed
    missing = [n for n in needed if n.lower().replace("_", "-").replace(".", "-") not in lock]
    assert not missing, f"requirements.lock lacks scikit-image's dependencies {missing}"
