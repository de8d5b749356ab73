"""``python -m nextface``: the same as the ``nextface`` command (the code lives in ``nextface_cli``)."""
