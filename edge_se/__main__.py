"""``python -m edge_se``: the ``edge-se`` command line."""

import sys

from edge_se.cli import main

sys.exit(main())
