#!/usr/bin/python3
"""Time a download of one large file from `mlgate serve` with the real huggingface_hub client
(hf_hub_download) against a direct `curl` of the same URL, and sample mlgate's RSS meanwhile.

Not part of CI (see hf_client.py for why). Both write to the same filesystem; each run starts with a
fresh client cache; runs alternate, and the medians are reported.

    head -c 1G /dev/urandom > /tmp/big.bin
    mlgate serve --data-dir /tmp/bench-data --addr 127.0.0.1:5610 &
    HF_HUB_SRC=/tmp/hfhub/src /usr/bin/python3 bench_hf.py --url http://127.0.0.1:5610 \
        --pid $(pgrep -n mlgate) --file /tmp/big.bin [--runs 3]
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PROJECT, MODEL, VERSION, PATH = "bench/hf", "big", "1.0.0", "weights/model.bin"


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Sampler:
    """The peak VmRSS of pid while it runs, sampled every 20 ms."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True, help="mlgate's pid, for its RSS")
    ap.add_argument("--file", required=True, help="the file to upload and download")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    endpoint = args.url.rstrip("/") + "/hf/" + PROJECT
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ.pop("HF_TOKEN", None)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.environ["HF_HUB_SRC"])
    from hf_client import debian_filelock_shim
    debian_filelock_shim()
    import httpx
    import huggingface_hub
    from huggingface_hub import hf_hub_download

    size = os.path.getsize(args.file)
    h = hashlib.sha256()
    with open(args.file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    want = h.hexdigest()
    put = f"{args.url}/api/v4/projects/{PROJECT.replace('/', '%2F')}/packages/ml_models/{MODEL}/{VERSION}/files/{PATH}"
    with open(args.file, "rb") as f, httpx.Client(timeout=None) as c:
        r = c.put(put, content=f, headers={"Content-Length": str(size)})
        if r.status_code not in (200, 201):
            sys.exit(f"upload: {r.status_code} {r.text}")
    url = f"{endpoint}/{MODEL}/resolve/{VERSION}/{PATH}"
    print(f"huggingface_hub {huggingface_hub.__version__}; {size} bytes at {url}")

    work = tempfile.mkdtemp(prefix="mlgate-hf-bench-", dir=os.path.dirname(os.path.abspath(args.file)))
    curl_s, hf_s, httpx_s, curl_rss, hf_rss = [], [], [], [], []
    idle = rss_kib(args.pid)
    for i in range(args.runs):
        out = os.path.join(work, "curl.bin")
        with Sampler(args.pid) as s:
            t0 = time.monotonic()
            subprocess.run(["curl", "-sSf", "-o", out, url], check=True)
            curl_s.append(time.monotonic() - t0)
        curl_rss.append(s.peak)
        os.remove(out)

        cache = os.path.join(work, f"cache-{i}")
        with Sampler(args.pid) as s:
            t0 = time.monotonic()
            p = hf_hub_download(MODEL, PATH, revision=VERSION, cache_dir=cache)
            hf_s.append(time.monotonic() - t0)
        hf_rss.append(s.peak)
        if i == 0:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != want:
                sys.exit("hf_hub_download: sha256 differs")
        shutil.rmtree(cache)

        # The client's own transport alone (httpx, the chunk size hf_hub_download reads with), to tell
        # the client's cost from mlgate's.
        t0 = time.monotonic()
        with httpx.Client(timeout=None) as c, c.stream("GET", url) as r, open(out, "wb") as f:
            for chunk in r.iter_bytes(chunk_size=10 * 1024 * 1024):
                f.write(chunk)
        httpx_s.append(time.monotonic() - t0)
        os.remove(out)
        print(f"run {i + 1}: curl {curl_s[-1]:.2f}s, hf_hub_download {hf_s[-1]:.2f}s, httpx stream {httpx_s[-1]:.2f}s")
    shutil.rmtree(work)
    c, hf, hx = statistics.median(curl_s), statistics.median(hf_s), statistics.median(httpx_s)
    mib = size / (1 << 20)
    print(f"median curl {c:.2f}s ({mib / c:.0f} MiB/s), hf_hub_download {hf:.2f}s ({mib / hf:.0f} MiB/s), "
          f"plain httpx {hx:.2f}s ({mib / hx:.0f} MiB/s); throughput ratio hf/curl {c / hf:.2f}, hf/httpx {hx / hf:.2f}")
    print(f"mlgate RSS: idle {idle / 1024:.0f} MiB, peak during curl {max(curl_rss) / 1024:.0f} MiB, "
          f"during hf_hub_download {max(hf_rss) / 1024:.0f} MiB, VmHWM {rss_kib(args.pid, 'VmHWM') / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
