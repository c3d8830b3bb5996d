"""`python -m generator`: write deterministic daily transaction files into an inbox."""

from generator.cli import main

raise SystemExit(main())
