"""The ``liens`` command: one entry point for the server, the kiosk, the demo and the admin CLI."""
