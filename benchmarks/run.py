"""Run the zoo's benchmarks from a checkout: ``python benchmarks/run.py speed [--quick]``.

The same as ``s3r-zoo bench ...`` (the code lives in ``s3r_zoo/bench/`` so the installed
package carries it). Parts: speed, convergence, accuracy, coefficients, all, report. Each
prints its table (ratios measured side by side in one run), writes
``benchmarks/results/<part>.json`` and PNGs, and regenerates ``benchmarks/RESULTS.md``.
"""

import sys

from s3r_zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
