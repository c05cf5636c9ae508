#!/usr/bin/python3
"""Drive the real huggingface_hub client against a running `mlgate serve`, check what it downloads,
and record every request and response it exchanged as test vectors.

This is documentation and a manual test, not part of CI: the client is not installed there (PyPI is
unreachable) and the project holds none of its code. Run it with Debian's python3 and the client's
source tree (see README "Hugging Face clients" and TestHFClientE2E in cmd/mlgate/hf_e2e_test.go):

    HF_HUB_SRC=/tmp/hfhub/src /usr/bin/python3 hf_client.py --url http://127.0.0.1:5000 \
        [--token WRITE --read-token READ --foreign-token OTHER] [--record vectors.json] [--populate]

Debian packages: python3-httpx python3-tqdm python3-filelock python3-fsspec python3-yaml
python3-requests python3-packaging python3-typing-extensions python3-click.

With --populate it first uploads the fixture (FILES below) through mlgate's package API. Without
tokens the server runs without --auth; with them it runs with --auth, the client gets the read
token through HF_TOKEN, and the foreign token (of another project) must see nothing.
"""

import argparse
import hashlib
import json
import atexit
import os
import shutil
import sys
import tempfile

PROJECT = "team/vision"
MODEL = "fraud-xgb"
ORG_MODEL = "org/bert-tiny"
BIG = 50_000_000


def generated(path, size):
    """Deterministic bytes: sha256("<path>\\n<i>") blocks, truncated. The Go replay test builds the same."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{path}\n{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


# The fixture: model -> version -> path -> spec. A spec is {"text": ...} or {"generated": size}.
FILES = {
    MODEL: {
        "1.0.0": {
            "config.json": {"text": '{"model_type": "bert", "hidden_size": 64}\n'},
            "README.md": {"text": "# fraud-xgb\n\nServed by mlgate over the Hugging Face protocol.\n"},
            "model.safetensors": {"generated": BIG},
            "sub/dir/weights.bin": {"generated": 300_001},
            "sub/tokenizer.json": {"text": '{"version": "1.0"}\n'},
        },
        "2.0.0-rc.1": {
            "model.safetensors": {"text": "a prerelease: main must not pick it\n"},
        },
    },
    ORG_MODEL: {
        "0.1.0": {"config.json": {"text": '{"model_type": "bert"}\n'}},
    },
}
ALIASES = {MODEL: {"champion": "1"}}  # alias -> version number (MLflow's), 1 is 1.0.0


def content(spec, path):
    if "text" in spec:
        return spec["text"].encode()
    return generated(path, spec["generated"])


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="mlgate's base URL")
    ap.add_argument("--token", help="a write token of team/vision (for --populate under --auth)")
    ap.add_argument("--read-token", help="a read token of team/vision: the client's HF_TOKEN")
    ap.add_argument("--foreign-token", help="a token of another project")
    ap.add_argument("--record", help="write the exchanges here (JSON)")
    ap.add_argument("--populate", action="store_true", help="upload the fixture first")
    ap.add_argument("--populate-only", action="store_true", help="upload the fixture and stop")
    args = ap.parse_args()

    endpoint = args.url.rstrip("/") + "/hf/" + PROJECT
    # The client reads these when it is imported.
    os.environ["HF_ENDPOINT"] = endpoint
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.pop("HF_HUB_OFFLINE", None)
    work = tempfile.mkdtemp(prefix="mlgate-hf-")
    atexit.register(shutil.rmtree, work, True)  # the caches hold several copies of the 50 MB file
    os.environ["HF_HOME"] = os.path.join(work, "home")
    if args.read_token:
        os.environ["HF_TOKEN"] = args.read_token
    else:
        os.environ.pop("HF_TOKEN", None)
    sys.path.insert(0, os.environ["HF_HUB_SRC"])
    debian_filelock_shim()

    import httpx
    import huggingface_hub
    from huggingface_hub import HfApi, hf_hub_download, list_repo_files, snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    from huggingface_hub.utils import _http

    print(f"huggingface_hub {huggingface_hub.__version__} from {huggingface_hub.__file__}, httpx {httpx.__version__}")

    if args.populate or args.populate_only:
        populate(httpx, args.url, args.token)
        if args.populate_only:
            print("populated")
            return

    # Record what the client sends and gets: an event hook on the client's own httpx.Client, beside
    # the client's hook (which adds its request id).
    exchanges = []
    scenario = ["setup"]
    tokens = {args.read_token: "<token:read>", args.foreign_token: "<token:foreign>", "mlg_not_a_token": "<token:bad>"}

    def on_request(request):
        _http.hf_request_event_hook(request)

    def on_response(response):
        req = response.request
        url = str(req.url)
        if not url.startswith(endpoint + "/"):
            rel = url  # a redirect target outside mlgate (a presigned URL)
        else:
            rel = url[len(endpoint):]
        rh = {}
        for k in ("range", "accept-encoding", "authorization"):
            if k in req.headers:
                v = req.headers[k]
                if k == "authorization":
                    scheme, _, secret = v.partition(" ")
                    v = scheme + " " + tokens.get(secret, "<token:unknown>")
                rh[k] = v
        ex = {"scenario": scenario[0], "method": req.method, "path": rel, "request_headers": rh,
              "status": response.status_code,
              "response_headers": {k: v for k, v in response.headers.items() if k.lower() not in ("date",)}}
        # API answers and error bodies; never a file's bytes (a file may be JSON too: config.json).
        api_or_error = rel.startswith("/api/") or response.status_code >= 400
        if req.method == "GET" and api_or_error and response.headers.get("content-type", "").startswith("application/json"):
            response.read()
            ex["body"] = response.json()
        exchanges.append(ex)

    huggingface_hub.set_client_factory(lambda: httpx.Client(
        event_hooks={"request": [on_request], "response": [on_response]}, follow_redirects=True, timeout=None))

    want = {}  # model -> version -> path -> sha256
    for model, versions in FILES.items():
        for version, files in versions.items():
            want.setdefault(model, {})[version] = {p: hashlib.sha256(content(s, p)).hexdigest() for p, s in files.items()}
    v1 = want[MODEL]["1.0.0"]
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    def expect(exc, what, fn):
        try:
            fn()
        except exc as e:
            check(True, f"{what}: {type(e).__name__}")
            return e
        except Exception as e:  # noqa: BLE001
            check(False, f"{what}: {type(e).__name__}: {e}")
            return e
        check(False, f"{what}: no error")

    api = HfApi()
    # model_info by semver, alias, main and no revision; the sha is the same, siblings carry sizes and sha256.
    scenario[0] = "model_info"
    shas = {}
    for rev in ("1.0.0", "champion", "main", None):
        info = api.model_info(MODEL, revision=rev)
        shas[rev] = info.sha
        sib = {s.rfilename: (s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings}
        check(sib == {p: (len(content(FILES[MODEL]["1.0.0"][p], p)), h) for p, h in v1.items()},
              f"model_info({MODEL!r}, revision={rev!r}) siblings")
    sha = shas["1.0.0"]
    check(len(set(shas.values())) == 1 and len(sha) == 40, f"one sha for 1.0.0, champion, main: {shas}")
    info = api.model_info(MODEL, revision=sha)
    check(info.sha == sha, "model_info by the sha itself")
    rc = api.model_info(MODEL, revision="2.0.0-rc.1")
    check(rc.sha != sha and [s.rfilename for s in rc.siblings] == ["model.safetensors"], "model_info of the prerelease")

    scenario[0] = "list_repo_files"
    for rev in ("1.0.0", "main"):
        files = list_repo_files(MODEL, revision=rev)
        check(sorted(files) == sorted(v1), f"list_repo_files(revision={rev!r}): {files}")
    tree = list(api.list_repo_tree(MODEL, path_in_repo="sub", recursive=True, expand=True, revision="champion"))
    check(sorted(e.path for e in tree) == ["sub/dir", "sub/dir/weights.bin", "sub/tokenizer.json"],
          f"list_repo_tree(sub, recursive, expand): {[e.path for e in tree]}")

    # snapshot_download by semver, alias and main, each into a fresh cache, every file's sha256 compared.
    for rev in ("1.0.0", "champion", "main"):
        scenario[0] = f"snapshot_download {rev}"
        cache = os.path.join(work, "cache-" + rev)
        folder = snapshot_download(MODEL, revision=rev, cache_dir=cache)
        got = {}
        for root, _, names in os.walk(folder):
            for n in names:
                p = os.path.join(root, n)
                got[os.path.relpath(p, folder)] = sha256_file(p)
        check(got == v1, f"snapshot_download(revision={rev!r}) -> {folder}: {len(got)} files, sha256 compared")
        check(os.path.basename(folder) == sha, f"snapshot folder is the sha {sha}")

    scenario[0] = "hf_hub_download"
    cache = os.path.join(work, "cache-files")
    for rev, path in (("champion", "sub/dir/weights.bin"), ("main", "model.safetensors"), ("1.0.0", "config.json")):
        p = hf_hub_download(MODEL, path, revision=rev, cache_dir=cache)
        check(sha256_file(p) == v1[path], f"hf_hub_download({path!r}, revision={rev!r}) sha256")
    p = hf_hub_download(MODEL, "config.json", subfolder=None, revision="1.0.0", local_dir=os.path.join(work, "local"))
    check(sha256_file(p) == v1["config.json"], "hf_hub_download to a local_dir")

    scenario[0] = "org"
    folder = snapshot_download(ORG_MODEL, revision="0.1.0", cache_dir=os.path.join(work, "cache-org"))
    check(sha256_file(os.path.join(folder, "config.json")) == want[ORG_MODEL]["0.1.0"]["config.json"],
          f"snapshot_download({ORG_MODEL!r}) (a repo id with an org part)")

    scenario[0] = "errors"
    cache = os.path.join(work, "cache-errors")
    expect(RepositoryNotFoundError, "model_info of a missing model", lambda: api.model_info("no-such-model"))
    expect(RevisionNotFoundError, "model_info of a missing revision", lambda: api.model_info(MODEL, revision="9.9.9"))
    expect(RevisionNotFoundError, "hf_hub_download of a missing revision",
           lambda: hf_hub_download(MODEL, "config.json", revision="no-such-alias", cache_dir=cache))
    expect(EntryNotFoundError, "hf_hub_download of a missing file",
           lambda: hf_hub_download(MODEL, "nope.txt", revision="1.0.0", cache_dir=cache))
    expect(RepositoryNotFoundError, "snapshot_download of a missing model",
           lambda: snapshot_download("no-such-model", cache_dir=cache))

    if args.read_token:
        scenario[0] = "auth"
        e = expect(RepositoryNotFoundError, "no token: a missing repository (401, as the Hub for a private one)",
                   lambda: api.model_info(MODEL, token=False))
        check(getattr(getattr(e, "response", None), "status_code", None) == 401, "no token: 401")
        e = expect(HfHubHTTPError, "an unknown token: 401 invalid credentials",
                   lambda: api.model_info(MODEL, token="mlg_not_a_token"))
        check(not isinstance(e, RepositoryNotFoundError) and e.response.status_code == 401, "an unknown token is not a missing repository")
        if args.foreign_token:
            for what, fn in (
                    ("model_info", lambda: api.model_info(MODEL, token=args.foreign_token)),
                    ("hf_hub_download", lambda: hf_hub_download(MODEL, "config.json", revision="1.0.0", token=args.foreign_token,
                                                                 cache_dir=os.path.join(work, "cache-foreign"))),
                    ("snapshot_download", lambda: snapshot_download(MODEL, token=args.foreign_token, cache_dir=os.path.join(work, "cache-foreign")))):
                e = expect(RepositoryNotFoundError, f"another project's token, {what}: a missing repository", fn)
                check(getattr(getattr(e, "response", None), "status_code", None) == 404, "another project's token: 404")

    if args.record:
        fixture = {m: {v: {p: dict(s, sha256=want[m][v][p]) for p, s in fs.items()} for v, fs in vs.items()}
                   for m, vs in FILES.items()}
        doc = {
            "client": f"huggingface_hub {huggingface_hub.__version__}, httpx {httpx.__version__}",
            "auth": bool(args.read_token),
            "project": PROJECT,
            "files": fixture,
            "aliases": ALIASES,
            "exchanges": exchanges,
        }
        with open(args.record, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        print(f"recorded {len(exchanges)} exchanges in {args.record}")

    if failures:
        print(f"{len(failures)} FAILED")
        sys.exit(1)
    print("all passed")


def debian_filelock_shim():
    """Debian 12 ships filelock 3.9; the client asks for >= 3.10, whose FileLock takes mode=. Drop it:
    the lock's file mode does not matter here. Nothing else of the client is touched."""
    import inspect

    import filelock
    if "mode" in inspect.signature(filelock.UnixFileLock.__init__).parameters:
        return

    class FileLock(filelock.FileLock):
        def __init__(self, *args, mode=None, **kwargs):
            super().__init__(*args, **kwargs)

    filelock.FileLock = FileLock


def populate(httpx, base, token):
    h = {"Authorization": "Bearer " + token} if token else {}
    with httpx.Client(timeout=None) as c:
        for model, versions in FILES.items():
            for version, files in versions.items():
                for path, spec in files.items():
                    url = (f"{base}/api/v4/projects/{PROJECT.replace('/', '%2F')}/packages/ml_models/"
                           f"{model.replace('/', '%2F')}/{version}/files/{path}")
                    r = c.put(url, content=content(spec, path), headers=h)
                    if r.status_code != 201:
                        sys.exit(f"upload {url}: {r.status_code} {r.text}")
        for model, aliases in ALIASES.items():
            for alias, version in aliases.items():
                r = c.post(f"{base}/api/v4/projects/{PROJECT.replace('/', '%2F')}/ml/mlflow/api/2.0/mlflow/registered-models/alias",
                           json={"name": model, "alias": alias, "version": version}, headers=h)
                if r.status_code != 200:
                    sys.exit(f"alias {alias}: {r.status_code} {r.text}")


if __name__ == "__main__":
    main()
