"""Put the plexus of the checkout that holds this workflow first on ``sys.path``.

Snakemake appends a local script's folder to ``sys.path``, so every script imports
this module before plexus: the workflow then runs its own checkout's code, whatever
plexus (if any) the environment has installed. The conda env (``envs/plexus.yaml``)
therefore needs only plexus's dependencies.
"""

import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")
if sys.path[0] != SRC:
    sys.path.insert(0, SRC)
