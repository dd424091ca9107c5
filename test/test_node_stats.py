"""NodeStats: bounded messages, errors that age out, implausible latencies counted apart."""
from cad_perception_ros.ros.stats import MAX_MESSAGE_CHARS, NodeStats, bounded


def test_messages_built_from_input_are_bounded():
    stats = NodeStats()
    stats.reject("encoding", "unsupported encoding " + "x" * 5_000_000)
    snap = stats.snapshot(dropped=0)
    assert len(snap["last_error"]) < MAX_MESSAGE_CHARS + 60
    assert "more characters" in snap["last_error"] and snap["rejected_encoding"] == 1
    assert bounded("short") == "short"


def test_last_error_ages_out():
    stats = NodeStats(error_hold_s=10.0)
    stats.error("boom")
    now = stats._last_error_time
    assert stats.error_active(now + 1.0) and not stats.error_active(now + 11.0)
    assert stats.snapshot(0)["error_active"] is True
    stats.clear_error()
    assert stats.snapshot(0)["error_active"] is False and stats.snapshot(0)["last_error"] == ""


def test_impossible_latency_is_counted_not_averaged():
    stats = NodeStats()
    stats.frame_done(5.0, 40.0, 1)
    stats.frame_done(5.0, 5.6e10, 1)  # an image stamped 0
    snap = stats.snapshot(0)
    assert snap["stamp_to_publish_latency_ms"] == 40.0
    assert snap["implausible_stamp_latencies"] == 1 and snap["frames_processed"] == 2
