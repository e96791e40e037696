"""``python -m kiln.training.builtin ALGO``: a built-in algorithm as a SageMaker training program."""

import sys

from kiln.training.builtin._run import main

if __name__ == "__main__":
    sys.exit(main())
