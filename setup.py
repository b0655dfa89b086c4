"""Package discovery only (metadata lives in pyproject.toml): the four packages, plus conf/ installed
as ``agentkit/conf`` so Hydra finds the configs after a plain ``pip install .``."""

from pathlib import Path

from setuptools import find_packages, setup

conf_packages = ["agentkit.conf"] + [
    "agentkit.conf." + ".".join(p.relative_to("conf").parts)
    for p in sorted(Path("conf").rglob("*")) if p.is_dir() and not p.name.startswith((".", "__"))
]
setup(
    packages=find_packages(include=["agentkit*", "envs*", "synth*", "train*"]) + conf_packages,
    package_dir={"agentkit.conf": "conf"},
)
