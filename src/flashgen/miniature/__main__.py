"""`python -m flashgen.miniature ...` == `flashgen train miniature ...`."""

import sys

from flashgen.cli import main

sys.exit(main(["train", "miniature", *sys.argv[1:]]))
