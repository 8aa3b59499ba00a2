"""`python -m worker ...` is the `workflow-worker` command."""

import sys

from worker.cli import main

sys.exit(main())
