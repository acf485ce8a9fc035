"""Loaded first by pytest, which puts this folder on sys.path: helpers shared by the test folders
(e.g. `two_process`) import from here."""

import os

# The CPU's default dtype follows its hardware (bf16 where it has AMX: flashgen.devices). Pin it
# to fp32 for the suite, so that every test sees the same defaults on every machine; the tests of
# the detection itself (tests/test_devices.py) set the variable themselves. Subprocesses inherit it.
os.environ["FLASHGEN_CPU_BF16"] = "0"
