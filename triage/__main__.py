"""``python -m triage``: the same as the ``triage`` command."""

import sys

from triage.cli.main import main

sys.exit(main())
