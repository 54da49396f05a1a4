"""``python -m needle.cli``: the same as the ``needle`` command."""

import sys

from . import main

sys.exit(main())
