"""``python -m mini_cal`` runs the ``mini-cal`` command (:mod:`mini_cal.lab.cli`)."""

import sys

from .lab.cli import main

sys.exit(main())
