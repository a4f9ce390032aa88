"""Who is using the tablet: the picker screen and the routing between picker, PIN and home."""

from screens.picker.picker import KV_FILE as PICKER_KV_FILE
from screens.picker.routing import WhoIsHere
from screens.pin.pin import KV_FILE as PIN_KV_FILE

KV_FILES = (PICKER_KV_FILE, PIN_KV_FILE)

__all__ = ["KV_FILES", "WhoIsHere"]
