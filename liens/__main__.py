"""``python -m liens`` is the ``liens`` command."""

import sys

from liens.cli import main

sys.exit(main())
