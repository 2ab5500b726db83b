"""scaletrain's α-β scaling model applied to published multi-GPU runs: predicted against published efficiency.

    python benchmarks/scaling_on_paper.py

Every input below is an assumption stated beside its source; change them and rerun. The model adds the ring
all-reduce of fp32 gradients (fused into buckets) to the 1-GPU step time with NO overlap, so it is a lower bound;
``full overlap`` hides communication behind compute completely (an upper bound). Real systems land in between.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaletrain.common.alpha_beta import AlphaBeta, ddp_buckets

GBIT = 1e9 / 8  # bytes per second in one Gbit/s


@dataclass
class Published:
    name: str
    params_m: float  # millions of parameters (fp32 gradients: 4 bytes each)
    step_1gpu_s: float  # measured or assumed 1-GPU step time
    world_size: int
    link_bytes_per_s: float  # bandwidth of the slowest link a ring crosses, per ring
    alpha_s: float  # latency per ring step (assumed)
    bucket_bytes: float
    published_efficiency: float
    source: str


RUNS = [
    # Horovod (Sergeev & Del Balso 2018): 128 servers x 4 Pascal GPUs, 25 Gbit/s RoCE, tf_cnn_benchmarks,
    # batch 64 per GPU. 1-GPU P100 throughputs from TensorFlow's published benchmarks (Inception V3 142 img/s,
    # VGG-16 144 img/s); ResNet-101 ~125 img/s interpolated by FLOPs between ResNet-50 (219) and ResNet-152 (91).
    # Horovod fuses tensors into 64 MiB buffers; one NCCL ring crosses each server's single 25 Gbit/s NIC.
    Published("Inception V3", 23.8, 64 / 142, 512, 25 * GBIT, 5e-6, 64 * 2**20, 0.90, "Horovod paper, Fig. 6"),
    Published("ResNet-101", 44.5, 64 / 125, 512, 25 * GBIT, 5e-6, 64 * 2**20, 0.90, "Horovod paper, Fig. 6"),
    Published("VGG-16", 138.4, 64 / 144, 512, 25 * GBIT, 5e-6, 64 * 2**20, 0.68, "Horovod paper, Fig. 6"),
    # PyTorch's DDP benchmark README: 2 DGX-1 (8 V100, NVLink) with 4x100 Gbit/s InfiniBand each, ResNet-50,
    # batch 32: 0.097 s/iter on 1 GPU without DDP (329 ex/s), 306 ex/s per GPU at 16 GPUs. NCCL runs one ring per
    # NIC, so the inter-node traffic is spread over 4 x 100 Gbit/s; DDP buckets are 25 MiB.
    Published(
        "ResNet-50 (DDP)",
        25.6,
        0.097,
        16,
        4 * 100 * GBIT,
        5e-6,
        25 * 2**20,
        306 / 329,
        "pytorch/benchmarks/distributed/ddp/README.md",
    ),
]


def predict(run: Published) -> tuple[float, float, float]:
    """(all-reduce seconds, no-overlap efficiency, full-overlap efficiency) for weak scaling."""
    grads = run.params_m * 1e6 * 4
    model = AlphaBeta(run.alpha_s, 1 / run.link_bytes_per_s, run.world_size)
    comm = model.allreduce_s(grads, buckets=ddp_buckets(grads, run.bucket_bytes))
    return comm, run.step_1gpu_s / (run.step_1gpu_s + comm), min(1.0, run.step_1gpu_s / max(comm, 1e-12))


def main() -> None:
    print(
        "| model | GPUs | gradients MiB | 1-GPU step s | all-reduce s | predicted (no overlap) "
        "| full overlap | published | source |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in RUNS:
        comm, low, high = predict(run)
        print(
            f"| {run.name} | {run.world_size} | {run.params_m * 4e6 / 2**20:.0f} | {run.step_1gpu_s:.3f} "
            f"| {comm:.4f} | {low:.0%} | {high:.0%} | {run.published_efficiency:.0%} | {run.source} |"
        )


if __name__ == "__main__":
    main()
