#!/usr/bin/env bash
# Start scaletrain's xla strategy on this host of a Cloud TPU pod slice (v4, v5e, v5p, v6e): run it on every
# host at once, e.g.
#
#   gcloud compute tpus tpu-vm ssh NAME --zone=ZONE --worker=all \
#       --command='cd scaletrain && bash launchers/tpu-pod.sh workload=digits_cnn train.epochs=30'
#
# Each host learns its worker number and worker 0's address from the TPU VM metadata server (on GKE, from
# TPU_WORKER_ID and TPU_WORKER_HOSTNAMES), then starts ONE process: the local launcher with node_rank = worker
# number. The TPU runtime finds the other hosts' chips itself; worker 0's address is only the rendezvous of the
# small host-side sums (loss, validation counts) and of the barriers.
#
# Environment: PYTHON (default .venv/bin/python), SCALETRAIN_MASTER_PORT (default 29500),
# TPU_METADATA_URL (default the GCE metadata server), SCALETRAIN_DRY_RUN=1 prints the command instead.
set -euo pipefail

metadata=${TPU_METADATA_URL:-http://metadata.google.internal/computeMetadata/v1/instance/attributes}
get() { curl -sf --max-time 10 -H "Metadata-Flavor: Google" "$metadata/$1"; }

if [[ -n ${TPU_WORKER_ID:-} && -n ${TPU_WORKER_HOSTNAMES:-} ]]; then  # GKE sets these
    worker=$TPU_WORKER_ID
    IFS=, read -ra hosts <<< "$TPU_WORKER_HOSTNAMES"
    master=${hosts[0]}
else
    worker=$(get agent-worker-number) || { echo "tpu-pod.sh: no TPU VM metadata at $metadata" >&2; exit 2; }
    IFS=, read -ra hosts <<< "$(get worker-network-endpoints)"  # hostname:uid:ip, in worker order
    master=${hosts[0]##*:}
fi

cmd=("${PYTHON:-.venv/bin/python}" -m scaletrain +strategy=xla strategy.device=TPU
     "launcher.nnodes=${#hosts[@]}" "launcher.node_rank=$worker" "launcher.master_addr=$master"
     "launcher.master_port=${SCALETRAIN_MASTER_PORT:-29500}" "$@")
if [[ ${SCALETRAIN_DRY_RUN:-0} == 1 ]]; then
    echo "${cmd[*]}"
    exit 0
fi
exec "${cmd[@]}"
