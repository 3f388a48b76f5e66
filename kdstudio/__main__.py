"""`python -m kdstudio` is the same as the `kdstudio` command."""

import sys

from kdstudio.cli import main

sys.exit(main())
