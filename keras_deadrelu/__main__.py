"""``python -m keras_deadrelu``: the ``keras-deadrelu`` command."""

import sys

from keras_deadrelu.command_line import main

if __name__ == "__main__":
    sys.exit(main())
