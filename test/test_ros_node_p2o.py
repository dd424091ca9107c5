"""The node runs the bundled Points2Objects model (`model:=points2objects`, model_dir left empty so
the node resolves models/points2objects itself) in its own process over loopback-only DDS, and
publishes what the same CadAligner gives when run directly."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(150)]
rclpy = pytest.importorskip("rclpy")

NS, CAM = "/cp_p2o", "/cam_p2o"
OUT = f"{NS}/cad_perception"


@pytest.fixture(scope="module")
def served(tmp_path_factory, CameraClient, apply_env, dds_env, start_node, stop_process, tiny_model_and_views, unique_domain_id):
    """(dataset, client, [(stamp, view index)]) with two rendered views served through the node."""
    tmp = tmp_path_factory.mktemp("node_p2o")
    _, _, dataset = tiny_model_and_views(tmp, views=2)
    env = dds_env(unique_domain_id(5))
    apply_env(env)
    proc = start_node(env, ["-r", f"__ns:={NS}", "-p", "model:=points2objects", "-p", "score_threshold:=0.0",
                            "-p", f"image_topic:={CAM}/image", "-p", f"camera_info_topic:={CAM}/camera_info",
                            "-p", "qos_reliability:=reliable"], tmp / "node.log")
    rclpy.init()
    try:
        client = CameraClient(rclpy, camera=CAM, out_ns=OUT)
        try:
            client.wait_connected(proc=proc, timeout=60.0)
        except AssertionError:
            raise AssertionError("node not ready; log:\n" + (tmp / "node.log").read_text()[-3000:]) from None
        stamps = [(client.serve(dataset[i].image, dataset[i].K), i) for i in range(len(dataset))]
        yield dataset, client, stamps
    finally:
        stop_process(proc)
        rclpy.try_shutdown()


def test_bundled_points2objects_model_is_served_like_the_pipeline(served):
    from cad_perception_ros.paths import asset_root
    from cad_perception_ros.pipeline import CadAligner
    from cad_perception_ros.ros.aligners import filter_predictions
    from cad_perception_ros.ros.conversions import prediction_from_alignment
    from cad_perception_ros.ros.params import NodeParams
    dataset, client, stamps = served
    aligner = CadAligner.from_model_dir(asset_root() / "models" / "points2objects", score_threshold=0.0)
    params = NodeParams(model="points2objects", score_threshold=0.0)
    total = 0
    for stamp, i in stamps:
        message = client.by_stamp("alignments", stamp)
        assert message.model == aligner.model_name and aligner.model_name.startswith("p2o_synthetic")
        published = [prediction_from_alignment(o) for o in message.objects]
        direct = filter_predictions(aligner(dataset[i].image, dataset[i].K), params)
        assert [(p.class_id, p.cad_id) for p in published] == [(q.class_id, q.cad_id) for q in direct]
        for p, q in zip(published, direct):
            np.testing.assert_allclose(p.alignment.translation, q.alignment.translation, atol=1e-4)
            np.testing.assert_allclose(p.alignment.rotation, q.alignment.rotation, atol=1e-4)
            assert p.cad_id in aligner.cad_database  # a real CAD model stands for each exemplar
        assert len(client.by_stamp("markers", stamp).markers) >= len(published)
        total += len(published)
    assert total > 0  # threshold 0: the fixed top-K always yields objects
