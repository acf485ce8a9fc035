"""`python -m flashgen.train <task> ...` == `flashgen train <task> ...`.

This form exists for launchers that take a module: `accelerate launch -m flashgen.train ...`.
"""

import sys

from flashgen.cli import main

# guarded: worker processes started with "spawn" re-import the main module (as __mp_main__)
if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
