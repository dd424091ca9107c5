"""image_cdr.parse_image reads what rclpy serialises (both byte orders of the fields it needs),
and raises only InputError("malformed") on truncated or garbage bytes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cad_perception_ros.ros.image_cdr import parse_image
from cad_perception_ros.ros.image_codec import InputError

serialization = pytest.importorskip("rclpy.serialization")


def serialised(height=3, width=5, encoding="bgr8", frame_id="cam_optical", pad=2, sec=17, nanosec=123456789):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    channels = {"bgr8": 3, "mono8": 1, "rgba8": 4}[encoding]
    step = width * channels + pad
    data = np.random.default_rng(height * width).integers(0, 256, height * step, dtype=np.uint8).tobytes()
    msg = Image(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id), height=height, width=width,
                encoding=encoding, is_bigendian=0, step=step, data=data)
    return serialization.serialize_message(msg), data, step


@pytest.mark.parametrize("encoding,frame_id", [("bgr8", "cam_optical"), ("mono8", ""), ("rgba8", "a" * 37)])
def test_matches_rclpy_serialisation(encoding, frame_id):
    raw, data, step = serialised(encoding=encoding, frame_id=frame_id, height=4, width=7)
    image = parse_image(raw)
    assert (image.header.stamp.sec, image.header.stamp.nanosec, image.header.frame_id) == (17, 123456789, frame_id)
    assert (image.height, image.width, image.encoding, image.step, image.is_bigendian) == (4, 7, encoding, step, 0)
    assert bytes(image.data) == data


def test_full_hd_frame_is_a_view_not_a_copy():
    raw, data, _ = serialised(height=1080, width=1920, encoding="bgr8", pad=0)
    image = parse_image(raw)
    assert len(image.data) == 1920 * 1080 * 3 and image.data.obj is raw  # points into the serialised bytes


def test_truncated_and_garbage_raise_input_error():
    raw, _, _ = serialised()
    for cut in (0, 3, 4, 10, 30, len(raw) - 1):
        with pytest.raises(InputError) as err:
            parse_image(raw[:cut])
        assert err.value.kind == "malformed"
    with pytest.raises(InputError, match="encapsulation"):
        parse_image(b"\x01\x02\x00\x00" + raw[4:])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_input_error(blob):
    try:
        image = parse_image(b"\x00\x01\x00\x00" + blob)
    except InputError:
        return
    assert len(image.data) <= len(blob)
