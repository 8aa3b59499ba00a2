"""`python -m workflow_worker ...` is the `workflow-worker` command."""

import sys

from workflow_worker.cli import main

sys.exit(main())
