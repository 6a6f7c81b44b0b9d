"""`python -m tokenward ...`: the `tokenward` command line."""

from ._cli import main

raise SystemExit(main())
