"""Run iteratr from a checkout: ``python iteratr.py ARGS`` behaves like the installed ``iteratr ARGS``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from iteratr.main import main

if __name__ == "__main__":
    main()
