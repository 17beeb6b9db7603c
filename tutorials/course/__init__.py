"""The course's grading and plotting helpers: ``grading`` (shared by every checker), ``plots`` (figure style) and
one module per notebook (``nb01`` ... ``nb08``) holding that notebook's checkers and figures."""
