"""``python -m recollect_mcp``: the same as the ``recollect-mcp`` command."""

import sys

from recollect_mcp.cli import main

sys.exit(main())
