"""Entry point of the benchmark driver (bench/run.sh calls it after installing and building)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from berthbench.main import main  # noqa: E402 - the path above makes the package importable

if __name__ == "__main__":
    main()
