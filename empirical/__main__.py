"""``python -m empirical ...`` is the same as the ``elasticity`` console command."""

import sys

from empirical.cli import main

sys.exit(main())
