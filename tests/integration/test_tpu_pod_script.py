"""launchers/tpu-pod.sh: what each TPU VM host runs, read from a fake metadata server (no TPU VM exists here)."""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "launchers" / "tpu-pod.sh"
ATTRIBUTES = {
    "agent-worker-number": "2",
    "worker-network-endpoints": "unknown:unknown:10.130.0.7,unknown:unknown:10.130.0.8,"
    "unknown:unknown:10.130.0.9,unknown:unknown:10.130.0.10",
}


@pytest.fixture
def metadata_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            name = self.path.rsplit("/", 1)[-1]
            if self.headers.get("Metadata-Flavor") != "Google" or name not in ATTRIBUTES:
                self.send_error(404)
                return
            body = ATTRIBUTES[name].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/computeMetadata/v1/instance/attributes"
    server.shutdown()


def _dry_run(extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TPU_")}
    env.update(SCALETRAIN_DRY_RUN="1", PYTHON="python", **extra_env)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=30)


def test_each_host_starts_one_process_with_its_worker_number_fake_metadata_server(metadata_server):
    proc = _dry_run({"TPU_METADATA_URL": metadata_server}, "workload=digits_cnn")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [
        "python", "-m", "scaletrain", "+strategy=xla", "strategy.device=TPU", "launcher.nnodes=4",
        "launcher.node_rank=2", "launcher.master_addr=10.130.0.7", "launcher.master_port=29500", "workload=digits_cnn",
    ]  # fmt: skip


def test_gke_variables_win_over_metadata():
    proc = _dry_run({"TPU_WORKER_ID": "1", "TPU_WORKER_HOSTNAMES": "tpu-0.svc,tpu-1.svc", "TPU_METADATA_URL": "x"})
    assert proc.returncode == 0, proc.stderr
    assert "launcher.nnodes=2 launcher.node_rank=1 launcher.master_addr=tpu-0.svc" in proc.stdout


def test_no_metadata_server_is_one_sentence_and_exit_2():
    proc = _dry_run({"TPU_METADATA_URL": "http://127.0.0.1:9/none"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == "tpu-pod.sh: no TPU VM metadata at http://127.0.0.1:9/none"
