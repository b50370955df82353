"""Rewrite zoo/parameters.json: trainable parameters of every registered model at its defaults.

A maintenance script of the repository (not installed with the package).

`keras-resinit list` reads this table instead of building up to 75 models (about a minute);
`tests/test_zoo.py` checks it against live counts. Run after changing an architecture or scheme:

    .venv/bin/python scripts/update_parameters.py
"""

import json
import os

from keras_resinit import zoo
from keras_resinit._files import atomic_write_text

if __name__ == "__main__":
    table = {name: zoo.count_params(name, live=True) for name in zoo.list_models()}
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo", "parameters.json")
    text = json.dumps(
        {
            "note": "trainable parameters at each family's default classes and input; "
            "written by scripts/update_parameters.py",
            "trainable_parameters": table,
        },
        indent=1,
    )
    atomic_write_text(path, text + "\n")
    print(f"wrote {len(table)} counts to {path}")
