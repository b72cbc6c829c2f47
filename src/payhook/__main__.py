"""``python -m payhook`` runs the command line."""

from __future__ import annotations

from payhook.cli import main

main()
