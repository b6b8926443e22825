"""`python -m poetry_workshop` is the `workshop` command."""

from poetry_workshop.cli.main import main

raise SystemExit(main())
