"""Shared check for the export tests: an ONNX file run by onnxruntime matches the torch model."""
import numpy as np
import torch


def onnx_outputs(onnx_path, output_names, image: torch.Tensor, K: torch.Tensor) -> dict[str, np.ndarray]:
    """Run the exported graph on CPU with inputs image (1, 3, H, W) and K (1, 3, 3)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return dict(zip(output_names, session.run(None, {"image": image.numpy(), "K": K.numpy()})))


def assert_onnx_matches_torch(model, onnx_path, output_names, image, K, *, rtol=1e-4, atol=1e-4) -> dict:
    """Every output of model.forward_export equals the ONNX Runtime output; returns the ONNX outputs."""
    with torch.no_grad():
        ref = model.forward_export(image, K)
    got = onnx_outputs(onnx_path, output_names, image, K)
    assert set(got) == set(ref)
    for name, value in ref.items():
        np.testing.assert_allclose(got[name], value.numpy(), rtol=rtol, atol=atol, err_msg=name)
    return got
