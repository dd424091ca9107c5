"""StampSynchronizer: buffers sized by time, the latest-CameraInfo mode, duplicate stamps."""
import pytest

from cad_perception_ros.ros.sync import StampSynchronizer

FRAME_NS = 33_333_333  # 30 Hz


def _stream(sync, lead_frames, frames=300):
    """CameraInfo published `lead_frames` frames after its image (a slow path); returns matched."""
    matched = []
    for i in range(frames + lead_frames):
        if i < frames:
            matched += sync.add_image(i * FRAME_NS, f"img{i}").matched
        j = i - lead_frames
        if 0 <= j < frames:
            matched += sync.add_info(j * FRAME_NS, f"info{j}").matched
    return matched


@pytest.mark.parametrize("lead", [7, 8, 12, 30])
def test_infos_arriving_frames_late_still_match(lead):
    matched = _stream(StampSynchronizer(), lead)
    assert len(matched) == 300
    assert all(img[3:] == info[4:] for img, info in matched)


def test_infos_arriving_frames_early_still_match():
    sync, matched = StampSynchronizer(), []
    for j in range(20):  # 20 CameraInfos (0.66 s) before any image
        sync.add_info(j * FRAME_NS, f"info{j}")
    for i in range(20):
        matched += sync.add_image(i * FRAME_NS, f"img{i}").matched
    assert [m[1] for m in matched] == [f"info{i}" for i in range(20)]


def test_info_400ms_after_its_image_matches_within_the_window():
    sync = StampSynchronizer(window_s=1.0)
    for i in range(12):  # 12 images (400 ms) before the first CameraInfo arrives
        assert sync.add_image(i * FRAME_NS, f"img{i}").unmatched_images == []
    assert sync.add_info(0, "info0").matched == [("img0", "info0")]


def test_image_older_than_the_window_is_given_up():
    sync = StampSynchronizer(window_s=0.5)
    sync.add_image(0, "old")
    assert sync.add_image(600_000_000, "new").unmatched_images == ["old"]


def test_latest_mode_serves_slow_and_latched_camera_info():
    sync, matched = StampSynchronizer(mode="latest"), []
    for i in range(60):  # CameraInfo at 1 Hz, images at 30 Hz
        if i % 30 == 0:
            matched += sync.add_info(i * FRAME_NS, f"info{i}").matched
        matched += sync.add_image(i * FRAME_NS, f"img{i}").matched
    assert len(matched) == 60 and matched[45] == ("img45", "info30")
    latched = StampSynchronizer(mode="latest")
    assert latched.add_image(5 * FRAME_NS, "early").matched == []  # waits for the first one
    assert latched.add_info(0, "once").matched == [("early", "once")]
    for i in range(6, 200):
        assert latched.add_image(i * FRAME_NS, "img").matched == [("img", "once")]


def test_latest_mode_keeps_latched_info_over_a_stamp_reset():
    sync = StampSynchronizer(mode="latest")
    sync.add_info(10**10, "latched")
    sync.add_image(10**10, "a")
    after = sync.add_image(5, "after_reset")
    assert after.reset and after.matched == [("after_reset", "latched")]


def test_duplicate_image_stamps_are_not_served_twice():
    sync = StampSynchronizer()
    sync.add_info(FRAME_NS, "info")
    assert sync.add_image(FRAME_NS, "first").matched == [("first", "info")]
    again = sync.add_image(FRAME_NS, "again")
    assert again.matched == [] and again.duplicates == ["again"]
    sync.add_image(2 * FRAME_NS, "waiting")
    assert sync.add_image(2 * FRAME_NS, "waiting_dup").duplicates == ["waiting_dup"]


def test_tolerance_changes_at_run_time():
    sync = StampSynchronizer()
    sync.add_info(0, "info")
    assert sync.add_image(50_000_000, "a").matched == []
    sync.set_tolerance(0.1)
    assert sync.add_image(60_000_000, "b").matched == [("b", "info")]


def test_bad_arguments_are_refused():
    for kwargs in (dict(tolerance_s=-1), dict(window_s=0), dict(mode="newest")):
        with pytest.raises(ValueError):
            StampSynchronizer(**kwargs)
