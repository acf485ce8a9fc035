"""Loaded first by pytest, which puts this folder on sys.path: helpers shared by the test folders
(e.g. `two_process`) import from here."""
