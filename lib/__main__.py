"""``python -m lib``: see :mod:`lib.cli`."""

import gc
import sys

from lib.cli import main

code = main()
# At exit the interpreter's collector would scan every object the stage imported or made:
# 1.9 s of each deep train job (torch and transformers), 0.6 s with scikit-learn. The results
# are on disk by now; frozen objects are still finalised at exit, only not scanned.
gc.freeze()
sys.exit(code)
