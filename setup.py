"""Package discovery only (metadata lives in pyproject.toml): the four packages, plus conf/ installed
as ``agentkit/conf`` so Hydra finds the configs after a plain ``pip install .``."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

conf_packages = ["agentkit.conf"] + [
    "agentkit.conf." + ".".join(p.relative_to("conf").parts)
    for p in sorted(Path("conf").rglob("*")) if p.is_dir() and not p.name.startswith((".", "__"))
]
setup(
    # Namespace discovery also picks up data-only folders (the tiny tokenizer, the code env's projects).
    packages=[p for p in find_namespace_packages(include=["agentkit*", "envs*", "synth*", "train*"])
              if "__pycache__" not in p and ".egg-info" not in p] + conf_packages,
    package_dir={"agentkit.conf": "conf"},
)
