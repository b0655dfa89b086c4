"""``agentkit`` as a subprocess, with the toy env of these tests registered (for the kill -9 test)."""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

import toy_synth_env  # noqa: E402

from agentkit.cli import main  # noqa: E402

toy_synth_env.register()
main(sys.argv[1:])
