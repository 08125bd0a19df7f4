"""``python -m keras_deadrelu.native``: builds the compiled counter op now and
prints whether it loads (exit status 0 either way: stock ops are the
fallback)."""

import sys

from keras_deadrelu.native_unit_sums import main

if __name__ == "__main__":
    sys.exit(main())
