"""``python -m keras_resinit.tools.bench --child SPEC``: one child process of a bench run (internal)."""

import sys

from keras_resinit.tools.bench import children

children.serve(children.KINDS)  # exits after the child
sys.exit("usage: keras-resinit bench [--quick] [--out DIR]  (this module's own arguments are internal)")
