"""Import a script of benchmarks/ (not a package) as a module, for the tests of its pure parts."""

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str, as_name: str | None = None):
    """benchmarks/<name>.py as a module. Scripts that import a sibling (binding_finetune imports
    relation_probe) find it: benchmarks/ is put on sys.path, as running the script does."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(as_name or name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
