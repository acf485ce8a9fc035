"""`python -m flashgen.train <task> ...` == `flashgen train <task> ...`.

This form exists for launchers that take a module: `accelerate launch -m flashgen.train ...`.
"""

import sys

from flashgen.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
