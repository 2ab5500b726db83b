"""A Keras model's training FLOPs per sample, counted on its TensorFlow graph, and the device's peak.

One forward and backward pass is traced (not run) as a ``tf.function`` on a batch of fixed shape, and the matrix
products, convolutions and einsums of its graph (nested functions included) are counted from their static shapes:
the same operations PyTorch's FlopCounterMode counts, so the two frameworks' MFU compare. The forward is traced in
inference mode, which has the same products and updates no state (a BatchNorm's moving statistics).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import numpy as np

from scaletrain.rank import flops
from scaletrain.rank.loops.tf_steps import per_example_loss, tf

log = logging.getLogger("scaletrain")

COUNT_ROWS = 2


def training_flops_per_sample(model: Any, loss: Any, x: np.ndarray, y: np.ndarray) -> float | None:
    """Forward plus backward FLOPs per sample of ``model`` on (x, y), or None when the graph cannot be traced."""

    def step(x: Any, y: Any) -> Any:
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(per_example_loss(loss, model(x, training=False), y))
        return tape.gradient(value, model.trainable_variables)

    try:
        specs = (tf.TensorSpec(x.shape, tf.as_dtype(x.dtype)), tf.TensorSpec(y.shape, tf.as_dtype(y.dtype)))
        graph = tf.function(step).get_concrete_function(*specs).graph
        return graph_flops(graph) / len(x) or None
    except Exception as exc:  # noqa: BLE001  (a user model may fail to trace at a fixed shape in any way)
        log.info("model FLOPs not counted (%s: %s); set train.flops_per_sample to report MFU", type(exc).__name__,
                 str(exc).splitlines()[0] if str(exc) else "")  # fmt: skip
        return None


def graph_flops(graph: Any) -> float:
    """The products' FLOPs of the ops the graph's outputs depend on (gradient code also builds ops whose results
    nobody uses, such as the gradient of the input batch, which TensorFlow prunes before running)."""
    total = 0.0
    for op in _needed_ops(graph):
        total += op_flops(op)
    for function in getattr(graph, "_functions", {}).values():  # nested functions (a layer's own tf.function)
        inner = getattr(function, "graph", None)
        if inner is not None:
            total += graph_flops(inner)
    return total


def _needed_ops(graph: Any) -> list[Any]:
    seen: dict[str, Any] = {}
    pending = [t.op for t in graph.outputs]
    while pending:
        op = pending.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        pending.extend(t.op for t in op.inputs)
        pending.extend(op.control_inputs)
    return list(seen.values())


def _shape(tensor: Any) -> list[int] | None:
    dims = tensor.shape.as_list() if tensor.shape.rank is not None else None
    return None if dims is None or any(d is None for d in dims) else dims


def op_flops(op: Any) -> float:
    """Multiply-adds × 2 of one op; 0 for ops that are not products (or whose shapes are not static)."""
    kind = op.type
    if kind == "MatMul":
        a, b = _shape(op.inputs[0]), _shape(op.inputs[1])
        if a is None or b is None:
            return 0.0
        m, k = (a[1], a[0]) if op.get_attr("transpose_a") else (a[0], a[1])
        n = b[0] if op.get_attr("transpose_b") else b[1]
        return 2.0 * m * n * k
    if kind.startswith("BatchMatMul"):
        a, out = _shape(op.inputs[0]), _shape(op.outputs[0])
        if a is None or out is None:
            return 0.0
        k = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2.0 * math.prod(out) * k
    if kind in ("Conv2D", "Conv3D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "Conv3DBackpropInputV2",
                "Conv3DBackpropFilterV2", "DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput",
                "DepthwiseConv2dNativeBackpropFilter"):  # fmt: skip
        return _conv_flops(op)
    if kind == "Einsum":
        return _einsum_flops(op)
    return 0.0


def _conv_flops(op: Any) -> float:
    """2 × (the forward output's elements) × (the filter's elements per output channel), the same for the forward
    and both backward convolutions (each is that many multiply-adds)."""
    kind = op.type
    if "BackpropInput" in kind:
        filt, out = op.inputs[1], op.inputs[2]  # (input_sizes, filter, out_backprop)
    elif "BackpropFilter" in kind:
        filt, out = op.outputs[0], op.inputs[2]  # (input, filter_sizes, out_backprop) -> the filter's gradient
    else:
        filt, out = op.inputs[1], op.outputs[0]
    f, o = _shape(filt), _shape(out)
    if f is None or o is None:
        return 0.0
    if kind.startswith("Depthwise"):  # filter [kh, kw, in, multiplier]: each output channel sees kh × kw inputs
        return 2.0 * math.prod(o) * math.prod(f[:-2])
    return 2.0 * math.prod(o) * math.prod(f[:-1])  # filter [..., in, out]


def _einsum_flops(op: Any) -> float:
    """2 × the product of every index's size, for a two-operand einsum that contracts (Keras' EinsumDense and
    attention)."""
    if len(op.inputs) != 2:
        return 0.0
    equation = op.get_attr("equation")
    equation = equation.decode() if isinstance(equation, bytes) else equation
    inputs = equation.split("->")[0].split(",")
    if "." in equation:
        return 0.0
    sizes: dict[str, int] = {}
    for letters, tensor in zip(inputs, op.inputs, strict=True):
        shape = _shape(tensor)
        if shape is None or len(shape) != len(letters):
            return 0.0
        sizes.update(zip(letters, shape, strict=True))
    return 2.0 * math.prod(sizes.values())


def device_peak(strategy: Any, precision: str) -> flops.Peak | None:
    """The replicas' device's peak: the table's for a GPU or TPU, measured in TensorFlow for a CPU."""
    devices = " ".join(strategy.extended.worker_devices)
    if "TPU" in devices:
        kind = _tpu_kind()
        return flops.table_peak(kind, precision) if kind else None
    if "GPU" in devices:
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return flops.table_peak(details.get("device_name", ""), precision)
    dtype = tf.bfloat16 if precision == "bf16" else tf.float32
    with tf.device("/CPU:0"):
        a = tf.random.normal([flops.CPU_BENCH_SIZE] * 2, dtype=tf.float32)
        a = tf.cast(a, dtype)
        b = tf.identity(a)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or _cpu_count()
    # A graph, as training runs, with the matrices as arguments (a captured constant could be folded away)
    product = tf.function(lambda x, y: tf.reduce_sum(tf.linalg.matmul(x, y)))
    peak = flops.cpu_peak("tensorflow", precision, threads, lambda: product(a, b).numpy())
    return flops.shared(peak, len(strategy.extended.worker_devices))


def _tpu_kind() -> str | None:
    try:
        devices = tf.config.list_logical_devices("TPU")
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("TPU")[0])
        name = details.get("device_name") or (devices[0].name if devices else "")
    except Exception:  # noqa: BLE001  (only for the peak table's lookup)
        return None
    found = re.search(r"v\d+\w*", name or "")
    return f"TPU {found.group(0)}" if found else None


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
