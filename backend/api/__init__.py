"""The HTTP interface: JSON API and server-rendered pages."""
