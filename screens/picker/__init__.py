"""Who is using the tablet: the picker screen and the routing between picker, PIN and home."""

from screens.picker.routing import KV_FILES, WhoIsHere

__all__ = ["KV_FILES", "WhoIsHere"]
