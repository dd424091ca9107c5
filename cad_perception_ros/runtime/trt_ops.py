"""ONNX operators supported by the ONNX-TensorRT parser, recorded as data, and a graph check.

Source: onnx/onnx-tensorrt ``docs/operators.md``, the matrix for TensorRT 10.15 ("supports
operators in the inclusive range of opset 9 to opset 24"). Only the default ONNX domain is
listed; any node of another domain (a custom op) needs a TensorRT plugin and is reported as
unsupported. Restrictions from the matrix that matter for this project are kept in
``RESTRICTIONS`` and printed with the report, not enforced.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import NamedTuple

TRT_VERSION = "10.15"
OPSET_RANGE = (9, 24)
SOURCE = "onnx/onnx-tensorrt docs/operators.md (TensorRT 10.15 support matrix)"

SUPPORTED_OPS: frozenset[str] = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN
RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink
Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan
Tanh TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# Listed as "N" in the same matrix (for clearer error messages; anything absent is unsupported too).
UNSUPPORTED_OPS: frozenset[str] = frozenset("""
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad Compress
ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool
MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement
OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty
SequenceErase SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence
StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""".split())

RESTRICTIONS: dict[str, str] = {
    "Resize": "modes nearest/linear only; no antialiasing",
    "MaxPool": "2D/3D only; Indices output unsupported",
    "GridSample": "4D input only",
    "TopK": "sorted=1, K < 3840",
    "CumSum": "axis must be a build-time constant",
}


class OpReport(NamedTuple):
    """counts: op name ("domain::Op" outside the default domain) -> node count, subgraphs included.
    unsupported: sorted op names not in SUPPORTED_OPS. opset: default-domain opset of the model."""

    counts: dict[str, int]
    unsupported: list[str]
    opset: int


class UnsupportedOpError(ValueError):
    """The ONNX graph uses an operator ONNX-TensorRT cannot parse."""


def _walk(graph, counts: Counter) -> None:
    for node in graph.node:
        name = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        counts[name] += 1
        for attr in node.attribute:  # If / Loop / Scan bodies
            if attr.g is not None and attr.g.node:
                _walk(attr.g, counts)
            for sub in attr.graphs:
                _walk(sub, counts)


def list_ops(onnx_path: str | Path) -> OpReport:
    """Every operator of the model at `onnx_path` (subgraphs included) against SUPPORTED_OPS."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    counts: Counter = Counter()
    _walk(model.graph, counts)
    for function in model.functions:  # local functions are inlined by the parser
        for node in function.node:
            counts[node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"] += 1
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    unsupported = sorted(op for op in counts if op not in SUPPORTED_OPS)
    return OpReport(dict(sorted(counts.items())), unsupported, opset)


def check_trt_ops(onnx_path: str | Path) -> OpReport:
    """Raise UnsupportedOpError naming every op (and the opset) TensorRT TRT_VERSION cannot parse."""
    report = list_ops(onnx_path)
    problems = []
    if report.unsupported:
        problems.append("unsupported op(s) " + ", ".join(f"{op} (x{report.counts[op]})" for op in report.unsupported))
    if not OPSET_RANGE[0] <= report.opset <= OPSET_RANGE[1]:
        problems.append(f"opset {report.opset} outside {OPSET_RANGE[0]}..{OPSET_RANGE[1]}")
    if problems:
        raise UnsupportedOpError(f"{onnx_path}: not parseable by ONNX-TensorRT {TRT_VERSION}: "
                                 + "; ".join(problems) + f" (source: {SOURCE})")
    return report
