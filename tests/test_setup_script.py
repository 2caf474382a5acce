"""scripts/setup.sh chooses where torch comes from: PyTorch's CPU index on a machine without a working
NVIDIA GPU when that index answers, pip's default index otherwise. Tested through its
``--print-torch-index`` mode (installs nothing) with a fake ``nvidia-smi`` and a local index."""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None or sys.platform == "win32", reason="needs bash")


@pytest.fixture
def fake_index(tmp_path):
    """A tiny PEP 503 index on 127.0.0.1 that lists torch (what the probe asks for)."""
    root = tmp_path / "index"
    (root / "torch").mkdir(parents=True)
    (root / "torch" / "index.html").write_text('<a href="torch-2.13.0+cpu-cp311-linux_x86_64.whl">t</a>')
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there now: connection refused


def _bin(tmp_path, nvidia_smi: str | None) -> Path:
    """A PATH folder with only what the choice needs (dirname) and, if given, a fake nvidia-smi:
    the machine's own nvidia-smi, if any, must not decide the test."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    (folder / "dirname").symlink_to(shutil.which("dirname"))
    if nvidia_smi is not None:
        fake = folder / "nvidia-smi"
        fake.write_text(f"#!{BASH}\n{nvidia_smi}\n")
        fake.chmod(0o755)
    return folder


GPU = 'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"'
BROKEN = ('echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."; '
          'exit 9')


def _choice(tmp_path, nvidia_smi, index_url, timeout="2"):
    env = {"PATH": str(_bin(tmp_path, nvidia_smi)), "PYTHON": sys.executable,
           "SPARSEVD_TORCH_CPU_INDEX": index_url, "SPARSEVD_TORCH_INDEX_TIMEOUT": timeout,
           "HOME": os.environ.get("HOME", str(tmp_path))}
    out = subprocess.run([BASH, str(SETUP), "--print-torch-index"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), out.stderr


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS always takes pip's default (CPU) wheels")
@pytest.mark.parametrize("nvidia_smi", [None, BROKEN], ids=["no-nvidia-smi", "nvidia-smi-fails"])
def test_no_gpu_and_a_reachable_index_gives_the_cpu_index(tmp_path, fake_index, nvidia_smi):
    chosen, why = _choice(tmp_path, nvidia_smi, fake_index)
    assert chosen == fake_index and "CPU build" in why


def test_a_gpu_gives_the_default_build(tmp_path, fake_index):
    chosen, why = _choice(tmp_path, GPU, fake_index)
    assert chosen == "default" and "NVIDIA GPU found" in why


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS always takes pip's default (CPU) wheels")
def test_an_unreachable_index_falls_back_to_the_default_quickly(tmp_path):
    url = _closed_port_url()
    start = time.monotonic()
    chosen, why = _choice(tmp_path, None, url)
    assert chosen == "default" and "did not answer" in why and url in why
    assert time.monotonic() - start < 30


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS always takes pip's default (CPU) wheels")
def test_an_index_that_hangs_is_given_up_after_the_timeout(tmp_path):
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        start = time.monotonic()
        chosen, _ = _choice(tmp_path, None, url, timeout="1")
        elapsed = time.monotonic() - start
    assert chosen == "default" and elapsed < 20


def test_unknown_argument_is_refused(tmp_path):
    out = subprocess.run([BASH, str(SETUP), "--cuda"], capture_output=True, text=True, timeout=60,
                         env={"PATH": str(_bin(tmp_path, None))})
    assert out.returncode == 2 and "--print-torch-index" in out.stderr
