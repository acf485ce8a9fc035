"""Paired differences between the runs of one `flashgen eval run` folder and a baseline run.

Kept so the commands recorded in benchmarks/results/*/run.sh still work: it is
`flashgen eval compare` (flashgen.eval.paired), which has the same arguments.

    .venv/bin/python benchmarks/paired.py OUT --baseline MODEL [--baseline-out OTHER_OUT]
"""

from __future__ import annotations

import sys

from flashgen.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["eval", "compare", *sys.argv[1:]]))
