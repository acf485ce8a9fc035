"""`python -m flashgen.miniature ...` == `flashgen train miniature ...`."""

import sys

from flashgen.cli import main

# guarded: the render pool's spawned workers re-import the main module (as __mp_main__)
if __name__ == "__main__":
    sys.exit(main(["train", "miniature", *sys.argv[1:]]))
