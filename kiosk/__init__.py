"""Liens kiosk core: everything the tablet does, without any window (no Kivy here)."""

__version__ = "0.1.0"
