"""The tablet's Kivy/KivyMD 2 user interface: screens that read properties and dispatch events.

Nothing here talks to MQTT or the database: ``screens.app.LiensApp`` wraps a ``KioskCore``.
"""

import os

# Kivy parses sys.argv on import unless told not to: `liens kiosk --...` options are ours.
os.environ.setdefault("KIVY_NO_ARGS", "1")


def configure_window(*, fullscreen: bool) -> None:
    """Set the window's mode before Kivy creates it (call before importing ``screens.app``).

    Switching to full screen after the window exists leaves an 800x600 X window with a
    1280x800 viewport on a display without a window manager (cage, Xvfb): decide it up front.
    """
    from kivy.config import Config

    Config.set("kivy", "exit_on_escape", "0")
    # 30 frames a second are plenty for a kiosk (video is 30 fps at most) and halve the cost of
    # Kivy redrawing an idle screen; touch feedback stays within one 33 ms frame.
    Config.set("graphics", "maxfps", "30")
    size = _x11_screen_size() if fullscreen else None
    if size is not None:
        # A borderless window covering the X screen: works with or without a window manager.
        Config.set("graphics", "fullscreen", "0")
        Config.set("graphics", "borderless", "1")
        Config.set("graphics", "position", "custom")
        Config.set("graphics", "left", "0")
        Config.set("graphics", "top", "0")
        Config.set("graphics", "width", str(size[0]))
        Config.set("graphics", "height", str(size[1]))
    elif fullscreen:
        # Wayland (cage) or Android: the compositor or the OS gives the whole screen.
        Config.set("graphics", "fullscreen", "auto")
        Config.set("graphics", "borderless", "1")
    else:
        Config.set("graphics", "fullscreen", "0")
        Config.set("graphics", "width", "1280")
        Config.set("graphics", "height", "800")


def _x11_screen_size() -> tuple[int, int] | None:
    """The size of the X screen the kiosk opens on, or None when not on X11."""
    display = os.environ.get("DISPLAY")
    if not display or os.environ.get("WAYLAND_DISPLAY"):
        return None
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        xlib = ctypes.CDLL(name)
    except OSError:
        return None
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XDefaultScreen.argtypes = [ctypes.c_void_p]
    xlib.XDisplayWidth.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlib.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    handle = xlib.XOpenDisplay(display.encode())
    if not handle:
        return None
    try:
        screen = xlib.XDefaultScreen(handle)
        return int(xlib.XDisplayWidth(handle, screen)), int(xlib.XDisplayHeight(handle, screen))
    finally:
        xlib.XCloseDisplay(handle)
