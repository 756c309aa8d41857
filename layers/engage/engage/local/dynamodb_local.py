"""DynamoDB Local (AWS's own engine): fetched once from the npm registry, verified, cached, started on demand.

The jar ships inside the npm package `amplify-dynamodb-simulator` (directory package/emulator/). That
package's own `sha256` file is the checksum of the upstream tarball it was made from, not of the jar,
so we pin the jar's own sha256 for the pinned package version and check it after every unpack.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "amplify-dynamodb-simulator"
PACKAGE_VERSION = "2.9.30"
JAR_SHA256 = "454305e9bc3e6ebcca5b62569869e31563b8d7e346474e94557b2600702146c7"  # DynamoDB Local 1.25.1


def cache_root() -> Path:
    """Where downloads and local keys live: $ENGAGE_CACHE_DIR, else ~/.cache/engage."""
    return Path(os.environ.get("ENGAGE_CACHE_DIR") or Path.home() / ".cache" / "engage")


def ensure_installed() -> Path:
    """The directory holding DynamoDBLocal.jar, fetching and verifying it the first time."""
    target = cache_root() / f"dynamodb-local-{PACKAGE_VERSION}"
    jar = target / "DynamoDBLocal.jar"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".dynamodb-local.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers fetch it once
        if jar.exists() and _sha256(jar) == JAR_SHA256:
            return target
        shutil.rmtree(target, ignore_errors=True)
        print(f"fetching DynamoDB Local ({PACKAGE}@{PACKAGE_VERSION}, once) into {target} …", file=sys.stderr)
        _fetch(target)
        actual = _sha256(jar)
        if actual != JAR_SHA256:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(f"DynamoDBLocal.jar sha256 is {actual}, expected {JAR_SHA256}; refusing to run it")
    return target


def _fetch(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed once to fetch DynamoDB Local; install Node.js/npm and retry")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--pack-destination", tmp, "--silent"],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"npm pack {PACKAGE}@{PACKAGE_VERSION} failed: {out.stderr.strip()}")
        tarball = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/emulator/")]
            archive.extractall(tmp, members=members, filter="data")
        shutil.move(Path(tmp) / "package" / "emulator", target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DynamoDBLocal:
    """A running in-memory DynamoDB Local; `endpoint` is what AWS_ENDPOINT_URL_DYNAMODB should be."""

    port: int
    process: subprocess.Popen = field(repr=False)
    log: Path = field(repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int | None = None, timeout: float = 30.0) -> DynamoDBLocal:
        home = ensure_installed()
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("Java 17+ is needed to run DynamoDB Local; install a JRE and retry")
        port = port or free_port()
        log = cache_root() / "local" / f"dynamodb-local-{port}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as output:  # a file, not a pipe: nobody reads it while the server runs
            process = subprocess.Popen(
                [java, "-Djava.library.path=DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar", "-inMemory", "-port", str(port)],
                cwd=home, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        instance = cls(port, process, log)
        instance._wait_ready(timeout)
        return instance

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"DynamoDB Local exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return
            except urllib.error.HTTPError:
                return  # any HTTP answer (400 for a bare GET) means the server is up
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"DynamoDB Local did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.unlink(missing_ok=True)
