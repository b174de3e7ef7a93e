"""``python -m pqcompress ...``: the same command as ``pqcompress ...``."""

import sys

from pqcompress.cli.main import main

sys.exit(main())
