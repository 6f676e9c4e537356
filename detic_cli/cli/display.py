"""`detect --show`: annotated frames in an OpenCV window, where OpenCV has a GUI and there is a display."""

from __future__ import annotations

import os
import re
import sys

import cv2
import numpy as np

__all__ = ["Window", "display_problem"]

_STOP_KEYS = (ord("q"), 27)  # q, Esc


def display_problem() -> str | None:
    """Why a window cannot be opened here (a headless OpenCV build, no display), or None."""
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    if gui is None or gui.group(1).upper() == "NONE":
        return "this OpenCV build has no GUI (opencv-python-headless); `pip install opencv-python` for windows"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display to open a window on (DISPLAY is not set)"
    return None


class Window:
    """One window: video and webcam frames play on, a picture waits for a key; q, Esc or closing the
    window stops."""

    def __init__(self, title: str = "detic") -> None:
        self.title = title
        self.opened = False

    def __call__(self, picture: np.ndarray, still: bool) -> bool:
        cv2.imshow(self.title, picture)
        self.opened = True
        while True:  # a picture waits for a key, polling so that closing the window also ends the wait
            key = cv2.waitKey(100 if still else 1)
            if key != -1 and (key & 0xFF) in _STOP_KEYS:
                return False
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                return False
            if key != -1 or not still:
                return True

    def close(self) -> None:
        if self.opened:
            try:
                cv2.destroyAllWindows()
                cv2.waitKey(1)
            except cv2.error:  # the user closed it already
                pass
