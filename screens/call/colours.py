"""The call screens' colours: green to answer, red to end, white on black over the video.

Kept beside the call screens (``screens/components/palette.py`` holds the app's shared ones);
every text/background pair is in ``TEXT_PAIRS`` and tested to reach a contrast of 7:1.
"""

from __future__ import annotations

from screens.components.palette import Rgba, hex_rgba

ANSWER = hex_rgba("#1B5E20")  # white text: 7.9:1
ANSWER_PRESSED = hex_rgba("#0E3B12")
END = hex_rgba("#9B1C1C")  # white text: 8.2:1
END_PRESSED = hex_rgba("#641010")
ON_BUTTON = hex_rgba("#FFFFFF")
VIDEO_BACKGROUND = hex_rgba("#000000")
ON_VIDEO = hex_rgba("#FFFFFF")
VIDEO_CAPTION = hex_rgba("#1A1A1A")  # under text shown over the video

TEXT_PAIRS: dict[str, tuple[Rgba, Rgba]] = {
    "answer button": (ON_BUTTON, ANSWER),
    "answer button pressed": (ON_BUTTON, ANSWER_PRESSED),
    "end button": (ON_BUTTON, END),
    "end button pressed": (ON_BUTTON, END_PRESSED),
    "text over video": (ON_VIDEO, VIDEO_BACKGROUND),
    "caption over video": (ON_VIDEO, VIDEO_CAPTION),
}
