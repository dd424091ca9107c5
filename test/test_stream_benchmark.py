"""Full-size camera frames through the node: `cad-perception stream-benchmark` streams 640x480 and
1280x720 rgb8 at 30 Hz (best-effort camera QoS, the DDS settings of scripts/local_dds.sh with
config/fastdds_local.xml) and no frame is lost in transport; the node's queue drops are counted
apart (processed + dropped = received)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]
pytest.importorskip("rclpy")


def test_parse_sizes():
    from cad_perception_ros.tools.stream_benchmark import parse_sizes
    assert parse_sizes("640x480, 1920x1080") == [(480, 640), (1080, 1920)]
    for bad in ("640", "axb", "10x10", ""):
        with pytest.raises(ValueError, match="--sizes"):
            parse_sizes(bad)


def test_local_dds_profile_is_shared_memory_only(dds_env, unique_domain_id):
    import xml.etree.ElementTree as ET
    env = dds_env(unique_domain_id(70))
    profile = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert profile == str(ROOT / "config" / "fastdds_local.xml") and env["FASTDDS_BUILTIN_TRANSPORTS"] == "SHM"
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(profile).getroot()
    types = [t.text for t in root.iterfind(".//d:transport_descriptor/d:type", ns)]
    assert types == ["SHM"]  # no UDP transport at all
    assert root.find(".//d:participant/d:rtps/d:useBuiltinTransports", ns).text == "false"
    segment = int(root.find(".//d:transport_descriptor/d:segment_size", ns).text)
    assert segment >= 8 * 1920 * 1080 * 3  # several 1080p rgb8 frames in flight


@pytest.mark.slow
def test_640x480_and_1280x720_at_30hz_lose_no_frame_in_transport(tmp_path, dds_env, unique_domain_id):
    env = dds_env(unique_domain_id(71))
    env.pop("_ROS_WHEELS_BOOTSTRAP_COMPLETE", None)
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "cad_perception_ros.cli", "stream-benchmark", "--seconds", "4",
                             "--sizes", "640x480,1280x720", "--json", str(out)],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert out.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    rows = {r["size"]: r for r in json.loads(out.read_text())}
    print("\n" + result.stdout)
    assert set(rows) == {"640x480", "1280x720"}
    for size, r in rows.items():
        assert r["sent"] >= 100, (size, r)  # ~4 s at 30 Hz
        assert r["lost"] == 0, (size, r)  # every frame reached the node
        assert r["processed"] + r["dropped_by_queue"] == r["received"], (size, r)
        assert r["processed"] > 0 and r["alignments_received"] == r["processed"], (size, r)
        assert r["errors"] == 0 and r["latency_ms_p50"] is not None
    assert result.returncode == 0, result.stderr[-3000:]
