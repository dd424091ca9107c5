"""On-disk cache of serialized TensorRT engines (pure Python; TensorRT itself is injected).

An engine is valid only for one ONNX file, one TensorRT version, one GPU model (name and
compute capability) and one precision: the cache key holds all four. Each cache file is

    MAGIC (8 bytes) | header length (uint32 little endian) | header (JSON) | engine bytes

where the header repeats the key and stores the payload size and sha256. A file whose magic,
header, key, size or hash does not match is treated as a miss and rebuilt, never raised.
Writes go to a temporary file in the same folder, fsync, then ``os.replace`` (atomic).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

log = logging.getLogger(__name__)

MAGIC = b"CPRTENG1"
_LEN = struct.Struct("<I")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class EngineKey(NamedTuple):
    """What a serialized engine depends on."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    precision: str  # "fp16" | "fp32"

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self).encode()).hexdigest()


class CacheResult(NamedTuple):
    """engine: serialized bytes; path: the cache file; status: hit | miss | stale | corrupt | forced."""

    engine: bytes
    path: Path
    status: str


Builder = Callable[[Path, EngineKey], bytes]


class EngineCache:
    """Cache folder of engines; `builder(onnx_path, key) -> bytes` builds one on a miss."""

    def __init__(self, *, cache_dir: str | Path, builder: Builder):
        self.cache_dir = Path(cache_dir)
        self.builder = builder

    def path_for(self, onnx_path: str | Path, key: EngineKey) -> Path:
        """One file per (ONNX stem, precision); the key lives in the header so a stale file is replaced."""
        return self.cache_dir / f"{Path(onnx_path).stem}.{key.precision}.engine"

    def get(self, onnx_path: str | Path, key: EngineKey, *, force: bool = False) -> CacheResult:
        """Return the cached engine for `key`, building (and storing) it on a miss or when forced."""
        path = self.path_for(onnx_path, key)
        if force:
            status = "forced"
        else:
            engine, status = self._read(path, key)
            if engine is not None:
                return CacheResult(engine, path, "hit")
        if status in ("stale", "corrupt"):
            log.warning("engine cache %s: %s, rebuilding", path, status)
        engine = bytes(self.builder(Path(onnx_path), key))
        if not engine:
            raise RuntimeError(f"engine builder returned no data for {onnx_path}")
        self._write(path, key, engine)
        return CacheResult(engine, path, status)

    @staticmethod
    def _read(path: Path, key: EngineKey) -> tuple[bytes | None, str]:
        """(engine, "hit") or (None, "miss" | "stale" | "corrupt"); never raises on bad content."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, "miss"
        except OSError as exc:
            log.warning("engine cache %s unreadable: %s", path, exc)
            return None, "corrupt"
        start = len(MAGIC) + _LEN.size
        if len(data) < start or data[:len(MAGIC)] != MAGIC:
            return None, "corrupt"
        (header_len,) = _LEN.unpack_from(data, len(MAGIC))
        try:
            header = json.loads(data[start:start + header_len].decode("utf-8"))
            stored_key = EngineKey(**header["key"])
            size, sha = int(header["size"]), str(header["sha256"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None, "corrupt"
        payload = data[start + header_len:]
        if len(payload) != size or hashlib.sha256(payload).hexdigest() != sha:
            return None, "corrupt"
        if stored_key != key:
            return None, "stale"
        return payload, "hit"

    def _write(self, path: Path, key: EngineKey, engine: bytes) -> None:
        header = json.dumps({"key": key._asdict(), "size": len(engine),
                             "sha256": hashlib.sha256(engine).hexdigest()}).encode("utf-8")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=self.cache_dir)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(MAGIC + _LEN.pack(len(header)) + header + engine)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
