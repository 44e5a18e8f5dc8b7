"""Entry point of the benchmark driver (bench/run.sh calls it after installing and building)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from berthbench import suites  # noqa: E402 - the path above makes the package importable
from berthbench.main import main  # noqa: E402

if __name__ == "__main__":
    # `--suite s3` / `proxy` / `gc` run the suites of berthbench/suites.py; the default suite is main's.
    suite, rest = suites.split_suite(sys.argv[1:])
    if suite == "default":
        main(rest)
    else:
        suites.main(sys.argv[1:])
