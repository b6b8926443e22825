"""`python -m poetry_workshop` is the `workshop` command."""

from poetry_workshop.cli import main

raise SystemExit(main())
