"""``python -m nextface``: run the ``nextface`` command."""

from nextface_cli.main import main

main()
