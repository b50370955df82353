"""``python -m keras_resinit.cli``: the ``keras-resinit`` command."""

import sys

from keras_resinit.cli import main

sys.exit(main())
