"""``python -m lib``: see :mod:`lib.cli`."""

import sys

from lib.cli import main
from lib.memory import skip_the_collection_at_exit

code = main()
skip_the_collection_at_exit()
sys.exit(code)
