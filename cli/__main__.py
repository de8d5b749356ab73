"""``python -m nextface_cli``: the same as the ``nextface`` command."""

from .main import main

main()
