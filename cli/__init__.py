"""The ``nextface`` command-line tool (import name ``nextface_cli``)."""
