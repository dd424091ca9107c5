"""The demo's bag writer: what rosbag2_storage_mcap reads without metadata.yaml (channel
"offered_qos_profiles" and "topic_type_hash", the "rosbag2" metadata record with ros_distro),
and independent readers (mcap + mcap-ros2-support, rosbags) decode the messages."""
from __future__ import annotations

import pytest
import yaml

from cad_perception_ros.tools.bag_mcap import Rosbag2McapWriter, qos_dict

mcap_reader = pytest.importorskip("mcap.reader")
pytest.importorskip("rosbags")


def write_bag(folder):
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    String = store.types["std_msgs/msg/String"]
    msgdef, _ = store.generate_msgdef("std_msgs/msg/String", ros_version=2)
    writer = Rosbag2McapWriter(folder)
    writer.add_topic("/chatter", "std_msgs/msg/String", msgdef, store.hash_rihs01("std_msgs/msg/String"),
                     [qos_dict(reliability="best_effort", depth=5)])
    for i in range(3):
        writer.write("/chatter", 1_000_000_000 + i, store.serialize_cdr(String(data=f"hello {i}"), "std_msgs/msg/String"))
    writer.close()
    return writer, store


def test_channels_and_metadata_as_rosbag2_writes_them(tmp_path):
    writer, store = write_bag(tmp_path / "bag")
    (tmp_path / "bag" / "metadata.yaml").unlink()  # rosbag2 must not need it
    with open(writer.path, "rb") as f:
        reader = mcap_reader.make_reader(f)
        summary = reader.get_summary()
        (channel,) = summary.channels.values()
        assert summary.schemas[channel.schema_id].encoding == "ros2msg" and channel.message_encoding == "cdr"
        assert channel.metadata["topic_type_hash"] == store.hash_rihs01("std_msgs/msg/String")
        assert channel.metadata["topic_type_hash"].startswith("RIHS01_")
        (qos,) = yaml.safe_load(channel.metadata["offered_qos_profiles"])
        assert qos["reliability"] == "best_effort" and qos["depth"] == 5 and qos["history"] == "keep_last"
        assert set(qos) == {"history", "depth", "reliability", "durability", "deadline", "lifespan", "liveliness",
                            "liveliness_lease_duration", "avoid_ros_namespace_conventions"}
        records = list(reader.iter_metadata())
        (record,) = [r for r in records if r.name == "rosbag2"]
        info = yaml.safe_load(record.metadata["serialized_metadata"])
        assert info["ros_distro"] == "kilted" and info["version"] == 9 and info["storage_identifier"] == "mcap"
        assert info["topics_with_message_count"][0]["message_count"] == 3
        assert info["topics_with_message_count"][0]["topic_metadata"]["type_description_hash"].startswith("RIHS01_")
        assert reader.get_header().profile == "ros2"


def test_independent_readers_decode_the_messages(tmp_path):
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.rosbag2 import Reader
    writer, store = write_bag(tmp_path / "bag")
    with open(writer.path, "rb") as f:
        texts = [m.data for _, _, _, m in mcap_reader.make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages()]
    assert texts == ["hello 0", "hello 1", "hello 2"]
    with Reader(tmp_path / "bag") as bag:
        assert bag.ros_distro == "kilted"
        (conn,) = bag.connections
        assert conn.digest == store.hash_rihs01("std_msgs/msg/String") and conn.ext.offered_qos_profiles[0].depth == 5
        got = [store.deserialize_cdr(raw, conn.msgtype).data for _, _, raw in bag.messages()]
    assert got == ["hello 0", "hello 1", "hello 2"]


def test_bad_input_is_refused(tmp_path):
    writer = Rosbag2McapWriter(tmp_path / "bag")
    with pytest.raises(ValueError, match="RIHS01"):
        writer.add_topic("/x", "std_msgs/msg/String", "string data", "md5:abc", [])
    with pytest.raises(ValueError, match="reliability"):
        qos_dict(reliability="sometimes")
    writer.close()
    with pytest.raises(FileExistsError):
        Rosbag2McapWriter(tmp_path / "bag")
