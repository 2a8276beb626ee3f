"""``python -m llmops`` runs the CLI."""

import sys

from llmops.cli import main

sys.exit(main())
