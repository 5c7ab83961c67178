"""`python -m server` is the `trolley` command."""

from server.cli import main

main()
