"""``python -m s3r_zoo`` is the same as the ``s3r-zoo`` command."""

import sys

from .cli import main

sys.exit(main())
