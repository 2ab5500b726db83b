"""scaletrain's forecast (scaling.forecast) against published multi-GPU scaling: is each published point inside
the predicted no-overlap / full-overlap bounds?

    python benchmarks/forecast_vs_published.py

Every input is stated beside its source; an input the source does not state is marked ASSUMED. Gradients are fp32
(4 bytes per parameter, also under AMP: the master weights and their gradients stay fp32). The per-GPU step time
is the published 1-GPU batch / 1-GPU throughput. Efficiency is weak scaling: per-GPU throughput at N over 1 GPU's.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaletrain.driver.scaling import forecast

MB = 2**20
HOROVOD = "https://github.com/horovod/horovod/blob/master/docs/benchmarks.rst"
HOROVOD_128 = "https://github.com/alsrgv/horovod (README, 32 servers x 4 GPUs)"
TF_P100 = "https://github.com/tensorflow/tensorflow/blob/r1.4/tensorflow/docs_src/performance/benchmarks.md"
DDP = "https://github.com/pytorch/pytorch/blob/main/benchmarks/distributed/ddp/README.md"
NVIDIA = (
    "https://github.com/NVIDIA/DeepLearningExamples/blob/master/PyTorch/Classification/ConvNets/resnet50v1.5/README.md"
)
KERAS = "https://keras.io/api/applications/"  # parameter counts

# Parameters (Keras applications table).
PARAMS = {"Inception V3": 23_851_784, "ResNet-50": 25_636_712, "ResNet-101": 44_707_176, "VGG-16": 138_357_544}

# Horovod ran tf_cnn_benchmarks at batch 64 per GPU on Pascal GPUs (P100 assumed). 1-GPU P100 throughput at batch
# 64, synthetic data: TensorFlow's DGX-1 table. ResNet-101 is not in that table: DERIVED from ResNet-50 (219 img/s,
# 3.8 GFLOPs) and ResNet-152 (91.8 img/s, 11.3 GFLOPs) with time per image linear in FLOPs (ResNet-101: 7.6 GFLOPs).
P100_IMG_S = {"Inception V3": 142.0, "VGG-16": 154.0}
_T50, _T152 = 1 / 219, 1 / 91.8
P100_IMG_S["ResNet-101"] = 1 / (_T50 + (7.6 - 3.8) / (11.3 - 3.8) * (_T152 - _T50))

# Networks. Horovod: 4 Pascal GPUs per server, RoCE 25 Gbit/s (stated); the intra-server link is not stated (PCIe
# 3.0 x16, ~100 Gbit/s, ASSUMED), latency ASSUMED 5 µs; Tensor Fusion packs tensors into 64 MiB buffers.
HOROVOD_NET = forecast.Network(25, 5, devices_per_node=4, intra_node_bandwidth_gbit_per_s=100, intra_node_latency_us=5)
# PyTorch DDP benchmark: DGX-1 (8 V100, NVLink) with 4 x 100 Gbit/s InfiniBand (stated); NVLink bandwidth not stated:
# V100's 150 GB/s per direction = 1200 Gbit/s ASSUMED; latency ASSUMED 5 µs (IB) and 2 µs (NVLink).
DGX1_NET = forecast.Network(400, 5, devices_per_node=8, intra_node_bandwidth_gbit_per_s=1200, intra_node_latency_us=2)
# DGX A100: NVSwitch, A100's NVLink 300 GB/s per direction = 2400 Gbit/s ASSUMED from the A100 spec; one node.
DGXA100_NET = forecast.Network(
    200, 5, devices_per_node=8, intra_node_bandwidth_gbit_per_s=2400, intra_node_latency_us=2
)


@dataclass
class Point:
    system: str
    model: str
    batch_per_gpu: int
    samples_per_s_1: float  # 1-GPU throughput, published (or derived, see above)
    world_size: int
    published_efficiency: float
    network: forecast.Network
    bucket_bytes: float
    source: str
    why_outside: str = ""


_HVD_WHY = (
    "its {mib:.0f} MiB of gradients take {comm:.2f} s per step at 25 Gbit/s against {compute:.2f} s of compute; "
    "Horovod overlaps the all-reduce with the backward pass only in part, so it lands between the bounds"
)
_NV_WHY = (
    "the all-reduce of 98 MiB over NVLink costs ~1 ms, under 1 % of the step, so communication cannot explain "
    "the loss, which lies outside the model and was not measured here: likely the one host, whose CPUs feed 8 "
    "GPUs instead of 1 (ImageNet JPEG decoding). Such a cost stays per image while the GPU time per image "
    "shrinks under AMP (2.6x on A100, 3.3x on V100), which is why AMP scales worse"
)
_DDP_WHY = (
    "the published 1-GPU run is without DDP, and DDP on one GPU already costs {cost:.0%} ({no_ddp} -> {one_ddp} "
    "ex/s); against that run the point is {vs_ddp:.1%}, still {gap:.1f} points under the no-overlap bound. The loss "
    "appears at 2 GPUs ({two} ex/s) and barely grows to 16, so it is a fixed cost of running several processes, "
    "not the all-reduce, whose modelled cost grows with N"
)

POINTS = [
    Point(
        "Horovod, 32 x 4 Pascal",
        "Inception V3",
        64,
        P100_IMG_S["Inception V3"],
        128,
        0.90,
        HOROVOD_NET,
        64 * MB,
        HOROVOD_128,
    ),
    Point(
        "Horovod, 32 x 4 Pascal",
        "ResNet-101",
        64,
        P100_IMG_S["ResNet-101"],
        128,
        0.90,
        HOROVOD_NET,
        64 * MB,
        HOROVOD_128,
    ),
    Point("Horovod, 32 x 4 Pascal", "VGG-16", 64, P100_IMG_S["VGG-16"], 128, 0.79, HOROVOD_NET, 64 * MB, HOROVOD_128),
    Point(
        "Horovod, 128 x 4 Pascal",
        "Inception V3",
        64,
        P100_IMG_S["Inception V3"],
        512,
        0.90,
        HOROVOD_NET,
        64 * MB,
        HOROVOD,
    ),
    Point(
        "Horovod, 128 x 4 Pascal", "ResNet-101", 64, P100_IMG_S["ResNet-101"], 512, 0.90, HOROVOD_NET, 64 * MB, HOROVOD
    ),
    Point("Horovod, 128 x 4 Pascal", "VGG-16", 64, P100_IMG_S["VGG-16"], 512, 0.68, HOROVOD_NET, 64 * MB, HOROVOD),
    Point("PyTorch DDP, 1 x DGX-1", "ResNet-50", 32, 329, 8, 307 / 329, DGX1_NET, 25 * MB, DDP),
    Point("PyTorch DDP, 2 x DGX-1", "ResNet-50", 32, 329, 16, 306 / 329, DGX1_NET, 25 * MB, DDP),
    Point("PyTorch DDP, 1 x DGX-1", "ResNet-101", 32, 197, 8, 179 / 197, DGX1_NET, 25 * MB, DDP),
    Point("PyTorch DDP, 2 x DGX-1", "ResNet-101", 32, 197, 16, 178 / 197, DGX1_NET, 25 * MB, DDP),
    Point("NVIDIA DGX A100, TF32", "ResNet-50", 256, 938, 8, 7248 / (8 * 938), DGXA100_NET, 25 * MB, NVIDIA),
    Point("NVIDIA DGX A100, AMP", "ResNet-50", 256, 2470, 8, 16621 / (8 * 2470), DGXA100_NET, 25 * MB, NVIDIA),
    Point("NVIDIA DGX-1 16G, FP32", "ResNet-50", 112, 367, 8, 2855 / (8 * 367), DGX1_NET, 25 * MB, NVIDIA),
    Point("NVIDIA DGX-1 16G, AMP", "ResNet-50", 256, 1200, 8, 8322 / (8 * 1200), DGX1_NET, 25 * MB, NVIDIA),
]
DDP_RUNS = {"ResNet-50": (329, 319, 310), "ResNet-101": (197, 187, 182)}  # ex/s: no DDP, DDP on 1 GPU, on 2 GPUs


def predict(p: Point) -> dict:
    grads = PARAMS[p.model] * 4
    base = forecast.Baseline(p.batch_per_gpu / p.samples_per_s_1, p.batch_per_gpu, grads)
    models = forecast.Models(p.network, p.network, p.network)
    return forecast.forecast_row("weak", base, p.world_size, models, bucket_bytes=p.bucket_bytes)


def verdict(p: Point, row: dict) -> tuple[bool, str]:
    low, high = row["efficiency_no_overlap"], row["efficiency_full_overlap"]
    inside = low - 1e-9 <= p.published_efficiency <= high + 1e-9
    if inside:
        if low > 0.75:
            return True, ""
        mib = PARAMS[p.model] * 4 / MB
        return True, _HVD_WHY.format(mib=mib, comm=row["comm_s"], compute=row["compute_s"])
    if p.source == DDP:
        no_ddp, one_ddp, two = DDP_RUNS[p.model]
        vs_ddp = p.published_efficiency * no_ddp / one_ddp
        why = _DDP_WHY.format(
            cost=1 - one_ddp / no_ddp, no_ddp=no_ddp, one_ddp=one_ddp, vs_ddp=vs_ddp, gap=100 * (low - vs_ddp), two=two
        )
        return False, why
    return False, _NV_WHY if p.source == NVIDIA else "below the no-overlap bound"


def main() -> None:
    print(
        "| system | model | GPUs | gradients MiB | 1-GPU step s | all-reduce s | no overlap | full overlap "
        "| published | inside | why not / note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for p in POINTS:
        row = predict(p)
        inside, why = verdict(p, row)
        print(
            f"| {p.system} | {p.model} | {p.world_size} | {PARAMS[p.model] * 4 / MB:.0f} "
            f"| {row['compute_s']:.3f} | {row['comm_s']:.4f} | {row['efficiency_no_overlap']:.1%} "
            f"| {row['efficiency_full_overlap']:.1%} | {p.published_efficiency:.1%} | {'yes' if inside else 'no'} "
            f"| {why} |"
        )


if __name__ == "__main__":
    main()
