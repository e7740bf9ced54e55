"""`python -m graphwarden` is the `graphwarden` command."""

import sys

from graphwarden.cli import main

sys.exit(main())
