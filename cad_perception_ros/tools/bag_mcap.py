"""A rosbag2 MCAP bag as rosbag2_storage_mcap writes it, from serialised (CDR) messages.

What rosbag2 (ros2/rosbag2 rosbag2_storage_mcap/src/mcap_storage.cpp) reads back without the
bag's metadata.yaml: profile "ros2"; one schema per type (encoding "ros2msg", the concatenated
.msg definitions); one channel per topic (message encoding "cdr") whose metadata holds
"offered_qos_profiles" (the YAML list rosbag2 writes, version 9) and "topic_type_hash"
(RIHS01_...); messages with log time = receive time; and a metadata record named "rosbag2" with
"serialized_metadata" (the bag's metadata as YAML, with ros_distro). metadata.yaml is written too.

ROS-free: callers hand in definitions, hashes and QoS (see recording.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_DISTRO = "kilted"  # the ROS 2 release of the wheels the project installs
BAG_VERSION = 9
# rosbag2's "infinite" durations (RMW_DURATION_INFINITE as sec / nsec)
INFINITE = {"sec": 9223372036, "nsec": 854775807}
UNSPECIFIED = {"sec": 0, "nsec": 0}


def qos_dict(*, reliability: str, durability: str = "volatile", history: str = "keep_last", depth: int = 10,
             liveliness: str = "automatic") -> dict[str, Any]:
    """One offered QoS profile in rosbag2's metadata form (version 9 keys and value names)."""
    # Discovery does not carry history / depth: a discovered publisher's are "unknown" / 0, as rosbag2 records them.
    common = ("system_default", "unknown", "best_available")
    for name, value, allowed in (("reliability", reliability, ("reliable", "best_effort", *common)),
                                 ("durability", durability, ("volatile", "transient_local", *common)),
                                 ("history", history, ("keep_last", "keep_all", "system_default", "unknown")),
                                 ("liveliness", liveliness, ("automatic", "manual_by_topic", *common))):
        if value not in allowed:
            raise ValueError(f"QoS {name} {value!r} is not one of {allowed}")
    return {"history": history, "depth": int(depth), "reliability": reliability, "durability": durability,
            "deadline": dict(INFINITE), "lifespan": dict(INFINITE), "liveliness": liveliness,
            "liveliness_lease_duration": dict(INFINITE), "avoid_ros_namespace_conventions": False}


@dataclass
class _Topic:
    channel_id: int
    name: str
    msgtype: str
    type_hash: str
    qos: list[dict[str, Any]]
    count: int = 0


class Rosbag2McapWriter:
    """folder/<name>_0.mcap + folder/metadata.yaml. add_topic() before a topic's first write()."""

    def __init__(self, folder: str | Path, *, ros_distro: str | None = None):
        from mcap.writer import CompressionType, Writer

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=False)
        self.path = self.folder / f"{self.folder.name}_0.mcap"
        self.ros_distro = ros_distro or os.environ.get("ROS_DISTRO") or DEFAULT_DISTRO
        self._stream = open(self.path, "wb")
        self._writer = Writer(self._stream, compression=CompressionType.NONE)
        self._writer.start(profile="ros2", library="cad_perception_ros rosbag2-mcap")
        self._schemas: dict[str, int] = {}
        self.topics: dict[str, _Topic] = {}
        self._first_ns: int | None = None
        self._last_ns = 0

    def add_topic(self, topic: str, msgtype: str, msgdef: str, type_hash: str, qos: list[dict[str, Any]]) -> None:
        """One channel. msgtype "pkg/msg/Name"; msgdef its ros2msg text; type_hash "RIHS01_<64 hex>"."""
        if topic in self.topics:
            raise ValueError(f"topic {topic} added twice")
        if not (type_hash.startswith("RIHS01_") and len(type_hash) == 7 + 64):
            raise ValueError(f"topic {topic}: type hash {type_hash!r} is not RIHS01_<64 hex digits>")
        if msgtype not in self._schemas:
            self._schemas[msgtype] = self._writer.register_schema(name=msgtype, encoding="ros2msg",
                                                                  data=msgdef.encode("utf-8"))
        channel = self._writer.register_channel(
            topic=topic, message_encoding="cdr", schema_id=self._schemas[msgtype],
            metadata={"offered_qos_profiles": yaml.safe_dump(qos, sort_keys=False).strip(),
                      "topic_type_hash": type_hash})
        self.topics[topic] = _Topic(channel, topic, msgtype, type_hash, qos)

    def write(self, topic: str, log_time_ns: int, data: bytes, publish_time_ns: int | None = None) -> None:
        entry = self.topics[topic]
        self._writer.add_message(channel_id=entry.channel_id, log_time=int(log_time_ns), data=bytes(data),
                                 publish_time=int(publish_time_ns if publish_time_ns is not None else log_time_ns),
                                 sequence=entry.count)
        entry.count += 1
        self._first_ns = log_time_ns if self._first_ns is None else min(self._first_ns, log_time_ns)
        self._last_ns = max(self._last_ns, log_time_ns)

    def metadata(self) -> dict[str, Any]:
        """rosbag2's BagMetadata (version 9) as a mapping."""
        start = self._first_ns or 0
        duration = max(0, self._last_ns - start)
        count = sum(t.count for t in self.topics.values())
        return {
            "version": BAG_VERSION, "storage_identifier": "mcap", "relative_file_paths": [self.path.name],
            "duration": {"nanoseconds": duration}, "starting_time": {"nanoseconds_since_epoch": start},
            "message_count": count,
            "topics_with_message_count": [
                {"topic_metadata": {"name": t.name, "type": t.msgtype, "serialization_format": "cdr",
                                    "offered_qos_profiles": t.qos, "type_description_hash": t.type_hash},
                 "message_count": t.count} for t in self.topics.values()],
            "compression_format": "", "compression_mode": "",
            "files": [{"path": self.path.name, "starting_time": {"nanoseconds_since_epoch": start},
                       "duration": {"nanoseconds": duration}, "message_count": count}],
            "custom_data": {}, "ros_distro": self.ros_distro}

    def close(self) -> None:
        info = self.metadata()
        self._writer.add_metadata("rosbag2", {"serialized_metadata": yaml.safe_dump(info, sort_keys=False),
                                              "ROS_DISTRO": self.ros_distro})
        self._writer.finish()
        self._stream.close()
        (self.folder / "metadata.yaml").write_text(
            yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False), encoding="utf-8")
