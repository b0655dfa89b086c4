"""Package discovery only (metadata lives in pyproject.toml).

One import package, ``agentkit``: the top-level folders ``envs/``, ``synth/``, ``train/`` and ``conf/`` are
installed as ``agentkit.envs``, ``agentkit.synth``, ``agentkit.train`` and ``agentkit.conf``, so no generic
top-level name (``train``, ``envs``) collides with a user's own ``train.py``.
"""

from pathlib import Path

from setuptools import find_namespace_packages, setup

MAPPED = {
    "envs": "agentkit.envs",
    "synth": "agentkit.synth",
    "train": "agentkit.train",
    "conf": "agentkit.conf",
}


def subpackages(folder: str, name: str) -> list[str]:
    # Namespace discovery also picks up data-only folders (the tiny tokenizer, the code env's projects).
    found = find_namespace_packages(where=folder, exclude=["*__pycache__*", "*.egg-info*"])
    return [name] + [f"{name}.{p}" for p in found if not p.split(".")[0].startswith((".", "__"))]


packages = find_namespace_packages(include=["agentkit", "agentkit.*"], exclude=["*__pycache__*"])
for folder, name in MAPPED.items():
    if Path(folder).is_dir():
        packages += subpackages(folder, name)

setup(packages=packages, package_dir={name: folder for folder, name in MAPPED.items()})
