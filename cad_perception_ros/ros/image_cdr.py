"""sensor_msgs/Image straight from its serialised CDR bytes (ROS-free).

The node subscribes to images with ``raw=True``: rclpy then hands over the serialised message as
one bytes object instead of building a Python Image whose 6 MB ``data`` (1920x1080 rgb8) is
copied into an ``array.array`` in the executor thread. This parser reads the few header fields
and returns the pixel data as a zero-copy memoryview, so the subscription keeps up with 30 Hz
full-size streams on a busy CPU.

Layout (XCDR1, the ROS 2 default): 4-byte encapsulation header (0x00 0x01 = little endian,
0x00 0x00 = big endian), then, aligned relative to the byte after it: header.stamp.sec int32,
header.stamp.nanosec uint32, header.frame_id string (uint32 length incl. NUL, bytes, NUL),
height uint32, width uint32, encoding string, is_bigendian uint8, step uint32,
data sequence<uint8> (uint32 length, bytes).
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from cad_perception_ros.ros.image_codec import InputError


class Stamp(NamedTuple):
    sec: int
    nanosec: int


class Header(NamedTuple):
    stamp: Stamp
    frame_id: str


class CdrImage(NamedTuple):
    """The fields of a sensor_msgs/Image the node reads; data is a memoryview into the CDR buffer."""

    header: Header
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


class _Cursor:
    def __init__(self, buffer: memoryview, little: bool):
        self.buf, self.pos, self.order = buffer, 4, "<" if little else ">"

    def _take(self, size: int, align: int) -> memoryview:
        self.pos = 4 + ((self.pos - 4 + align - 1) // align) * align
        end = self.pos + size
        if size < 0 or end > len(self.buf):
            raise InputError("malformed", f"serialised Image truncated at byte {self.pos} of {len(self.buf)}")
        view, self.pos = self.buf[self.pos:end], end
        return view

    def uint32(self) -> int:
        return struct.unpack(self.order + "I", self._take(4, 4))[0]

    def int32(self) -> int:
        return struct.unpack(self.order + "i", self._take(4, 4))[0]

    def uint8(self) -> int:
        return self._take(1, 1)[0]

    def string(self, what: str, limit: int = 4096) -> str:
        length = self.uint32()
        if not (1 <= length <= limit):
            raise InputError("malformed", f"serialised Image: {what} length {length} outside 1..{limit}")
        raw = bytes(self._take(length, 1))
        if raw[-1] != 0:
            raise InputError("malformed", f"serialised Image: {what} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("malformed", f"serialised Image: {what} is not UTF-8") from None


def parse_image(serialised: bytes | memoryview) -> CdrImage:
    """Serialised sensor_msgs/Image -> CdrImage. Raises InputError("malformed") on bad bytes."""
    buf = memoryview(serialised).cast("B")
    if len(buf) < 4 or buf[0] != 0 or buf[1] not in (0, 1):
        raise InputError("malformed", "serialised Image: not a CDR encapsulation header")
    cur = _Cursor(buf, little=buf[1] == 1)
    stamp = Stamp(cur.int32(), cur.uint32())
    frame_id = cur.string("header.frame_id")
    height, width = cur.uint32(), cur.uint32()
    encoding = cur.string("encoding", limit=64)
    is_bigendian, step = cur.uint8(), cur.uint32()
    length = cur.uint32()
    data = cur._take(length, 1)
    return CdrImage(Header(stamp, frame_id), height, width, encoding, is_bigendian, step, data)
