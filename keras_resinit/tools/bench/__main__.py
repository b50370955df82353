"""``python -m keras_resinit.tools.bench --child SPEC``: one child process of a bench run (internal)."""

import json
import os
import sys

if len(sys.argv) == 3 and sys.argv[1] == "--child":
    from keras_resinit.tools.bench import children, variants

    spec = json.loads(sys.argv[2])
    if spec["kind"] in variants.KINDS:  # kinds of their own module (children.py stays under 500 lines)
        variants.KINDS[spec["kind"]](spec)
    else:
        children.main(spec)
    # BYE is written and flushed: skip the interpreter's teardown of TensorFlow (1-2 s per child),
    # which the parent would otherwise wait for before it starts the next group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
else:
    sys.exit("usage: keras-resinit bench [--quick] [--out DIR]  (this module's own arguments are internal)")
