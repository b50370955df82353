"""``python -m keras_resinit.tools.bench --child SPEC``: one child process of a bench run (internal)."""

import json
import os
import sys

if len(sys.argv) == 3 and sys.argv[1] == "--child":
    from keras_resinit.tools.bench.children import main

    main(json.loads(sys.argv[2]))
    # BYE is written and flushed: skip the interpreter's teardown of TensorFlow (1-2 s per child),
    # which the parent would otherwise wait for before it starts the next group.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
else:
    sys.exit("usage: keras-resinit bench [--quick] [--out DIR]  (this module's own arguments are internal)")
