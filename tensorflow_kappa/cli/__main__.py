"""``python -m tensorflow_kappa.cli``: the ``kappa`` command."""
import sys

from tensorflow_kappa.cli import main

if __name__ == "__main__":
    sys.exit(main())
