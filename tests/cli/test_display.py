"""`detect --show`: when a window can be opened, and how the window answers keys (OpenCV calls faked)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from detic_cli.cli import display

GUI_BUILD = "  Video I/O:\n  GUI:                           GTK3\n    GTK+:                        YES\n"
HEADLESS_BUILD = "  GUI:                           NONE\n"


def test_display_problem_names_a_headless_opencv(monkeypatch):
    monkeypatch.setattr(display.cv2, "getBuildInformation", lambda: HEADLESS_BUILD)
    assert "no GUI" in display.display_problem() and "pip install opencv-python" in display.display_problem()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is how Linux names a display")
def test_display_problem_needs_a_display_on_linux(monkeypatch):
    monkeypatch.setattr(display.cv2, "getBuildInformation", lambda: GUI_BUILD)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display.display_problem() == "no display to open a window on (DISPLAY is not set)"
    monkeypatch.setenv("DISPLAY", ":0")
    assert display.display_problem() is None


def test_show_without_a_display_is_one_line(run_cli, monkeypatch, tmp_path):
    monkeypatch.setattr(display.cv2, "getBuildInformation", lambda: HEADLESS_BUILD)
    picture = tmp_path / "a.png"
    picture.write_bytes(b"")
    code, _, err = run_cli("detect", picture, "--show")
    assert code == 1 and err.strip().startswith("error: --show: this OpenCV build has no GUI")
    assert err.strip().count("\n") == 0


class FakeWindows:
    """cv2's window calls: waitKey answers from `keys` (-1: no key), the window is visible while `visible`."""

    def __init__(self, keys: list[int], visible: list[float] | None = None) -> None:
        self.keys, self.visible, self.waits, self.shown, self.destroyed = keys, visible, [], 0, 0

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(display.cv2, "imshow", lambda title, picture: setattr(self, "shown", self.shown + 1))
        monkeypatch.setattr(display.cv2, "waitKey", lambda delay: self.waits.append(delay) or self.keys.pop(0))
        monkeypatch.setattr(display.cv2, "getWindowProperty",
                            lambda title, prop: self.visible.pop(0) if self.visible else 1.0)
        monkeypatch.setattr(display.cv2, "destroyAllWindows", lambda: setattr(self, "destroyed", self.destroyed + 1))


def test_window_plays_frames_waits_on_pictures_and_stops_on_q_or_esc(monkeypatch):
    fake = FakeWindows([-1, -1, -1, ord("a"), ord("q"), 27, -1])
    fake.install(monkeypatch)
    window = display.Window("detic")
    frame = np.zeros((4, 4, 3), np.uint8)
    assert window(frame, still=False) is True       # no key within 1 ms: play on
    assert window(frame, still=True) is True        # a picture polls until a key comes
    assert window(frame, still=False) is False      # q
    assert window(frame, still=False) is False      # Esc
    assert fake.waits == [1, 100, 100, 100, 1, 1] and fake.shown == 4
    window.close()
    assert fake.destroyed == 1


def test_closing_the_window_stops_videos_and_ends_a_picture_wait(monkeypatch):
    fake = FakeWindows([-1, -1, -1], visible=[0.0, 1.0, 0.0])
    fake.install(monkeypatch)
    window = display.Window()
    frame = np.zeros((4, 4, 3), np.uint8)
    assert window(frame, still=False) is False
    assert window(frame, still=True) is False  # closed during the wait: no hang
    assert fake.waits == [1, 100, 100]


def test_closing_an_already_closed_window_is_quiet(monkeypatch, capsys):
    """OpenCV raises when asked to destroy a window the user already closed: close() swallows exactly that
    error (tried once, nothing raised or printed); any other error still propagates."""
    tried = []

    def refuse():
        tried.append("destroy")
        raise display.cv2.error("NULL window")

    monkeypatch.setattr(display.cv2, "destroyAllWindows", refuse)
    window = display.Window()
    window.close()  # never opened: OpenCV is not touched
    assert tried == []
    window.opened = True
    window.close()
    assert tried == ["destroy"]
    assert capsys.readouterr() == ("", "")

    def broken():
        raise RuntimeError("not an OpenCV window error")

    monkeypatch.setattr(display.cv2, "destroyAllWindows", broken)
    with pytest.raises(RuntimeError, match="not an OpenCV"):
        window.close()
