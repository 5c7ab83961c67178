"""`python -m kiosk_client` is the `trolley-kiosk` command."""

from kiosk_client.cli import main

raise SystemExit(main())
