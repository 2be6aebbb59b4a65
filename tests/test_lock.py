"""The lock files are the dependency set: the suite runs on exactly what requirements-dev.lock
pins, and requirements.lock (what a deployment installs) pins the same versions."""

from __future__ import annotations

import configparser
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", re.MULTILINE)

pytestmark = pytest.mark.locked


def pins(name: str) -> dict[str, str]:
    return {canonicalize_name(n): v for n, v in PIN.findall((ROOT / name).read_text())}


def requirements(*extras: str) -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in extras:
        lines += config["options.extras_require"][extra].splitlines()
    return {canonicalize_name(Requirement(line).name) for line in lines if line.strip() and not line.startswith("#")}


def test_the_application_lock_pins_what_the_development_lock_pins():
    app, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert app, "requirements.lock pins nothing"
    assert {name: version for name, version in app.items() if dev.get(name) != version} == {}
    assert requirements() <= set(app), "every run-time requirement of setup.cfg is locked"
    assert requirements("test", "dev") <= set(dev), "every test and development requirement is locked"


def test_every_pin_is_hash_checked():
    for name in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / name).read_text()
        blocks = [b for b in re.split(r"\n(?=\S)", text) if PIN.match(b)]
        assert blocks and all("--hash=sha256:" in b for b in blocks), f"{name}: a pin without its hashes"


def test_the_suite_runs_on_exactly_the_locked_versions():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    different = {name: (version, installed.get(name)) for name, version in pins("requirements-dev.lock").items()
                 if installed.get(name) != version}
    assert different == {}, "installed versions differ from requirements-dev.lock: run `make install`"
