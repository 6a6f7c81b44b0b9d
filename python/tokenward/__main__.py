"""`python -m tokenward ...`"""

from .cli import main

raise SystemExit(main())
