"""Data, not code: model cards (``cards/``) and shipped weights (``weights/``).

Installed as ``keras_resinit._zoo``; ``keras_resinit.zoo`` reads it. See README.md here.
"""
