"""``python -m streamodel``: the same command as the ``streamodel`` console script."""

from streamodel.cli import main

raise SystemExit(main())
