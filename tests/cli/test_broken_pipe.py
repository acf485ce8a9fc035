"""`flashgen ... | head`: a reader that leaves early is not an error (no "Broken pipe" line)."""

import subprocess
import sys

CODE = "import sys; from flashgen.cli import main; sys.exit(main(['models']))"


def test_a_closed_stdout_ends_quietly_with_the_sigpipe_status():
    p = subprocess.Popen(
        [sys.executable, "-c", CODE], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    p.stdout.close()  # the reader is gone before the command prints anything
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141
    assert err == b""
