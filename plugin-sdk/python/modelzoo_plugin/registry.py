"""Registries: plugins that serve models (docs/protocol.md, "Registry methods")."""

from dataclasses import dataclass, field
from typing import List

from .errors import Error
from .functions import FunctionTable

__all__ = ["FileInfo", "ModelMetadata", "ModelSummary", "DownloadRequest", "ChunkSink", "Registry", "FunctionRegistry",
           "sha256_file"]


@dataclass
class FileInfo:
    """One file of a model version: its name inside the model, size and SHA-256 (64 lowercase hex)."""
    name: str
    size: int
    sha256: str
    # Optional: an absolute path the daemon may read itself (only inside directories its
    # configuration trusts for the source; it verifies size and sha256 either way).
    local_path: str = ""

    def to_dict(self):
        d = {"name": self.name, "size": self.size, "sha256": self.sha256}
        if self.local_path:
            d["local_path"] = self.local_path
        return d


@dataclass
class ModelMetadata:
    """The result of `metadata`: one version of one model."""
    name: str
    version: str
    description: str = ""
    author: str = ""
    license: str = ""
    format: str = ""
    tags: List[str] = field(default_factory=list)
    files: List[FileInfo] = field(default_factory=list)

    def to_dict(self):
        return {"name": self.name, "version": self.version, "description": self.description,
                "author": self.author, "license": self.license, "format": self.format,
                "tags": list(self.tags),
                "files": [f.to_dict() if hasattr(f, "to_dict") else dict(f) for f in self.files]}


@dataclass
class ModelSummary:
    """One entry of `list`: a model and its versions, newest first."""
    name: str
    versions: List[str] = field(default_factory=list)
    description: str = ""

    def to_dict(self):
        return {"name": self.name, "versions": list(self.versions), "description": self.description}


@dataclass
class DownloadRequest:
    """What a `download` asks for: the bytes of `file` from `offset` to its end."""
    name: str
    version: str   # always concrete: the daemon resolves "latest" through metadata first
    file: str      # a file name from that version's metadata
    offset: int = 0


class ChunkSink:
    """Where a download writes its bytes (the SDK provides it; use it from download() only).

    write(data) sends `data` as chunks of at most `chunk_size` bytes, each waiting for credit
    from the daemon (flow control). It raises Error("unavailable") when the daemon cancelled
    the download or the plugin is stopping, and Error("timeout") when no credit came within
    the request's stall timeout: let those propagate out of download().
    """

    chunk_size = 1 << 20  # the largest chunk the daemon accepts
    sent = 0              # bytes written so far

    def write(self, data):
        raise NotImplementedError

    def write_file(self, f, limit=None):
        """Copies a binary file object from its current position to EOF (or `limit` bytes)."""
        left = limit
        while left is None or left > 0:
            n = self.chunk_size if left is None else min(self.chunk_size, left)
            block = f.read(n)
            if not block:
                break
            self.write(block)
            if left is not None:
                left -= len(block)


class Registry:
    """Subclass and override metadata, list and download (and configure, exists if useful).

    Methods run on several worker threads at once and must be thread-safe. Raise Error (or
    NotFound, BadRequest, ...) on failure; any other exception is answered as `internal`.
    Names in the arguments have already been checked against the protocol's grammar.
    """

    def configure(self, config):
        """Called once after the welcome, before any request, with the source's config (a dict).
        Raising here ends the plugin (exit status 1, "configuration rejected: ...")."""

    def metadata(self, name, version):
        """ModelMetadata (or its dict) of `name` at `version`; `version` "" means the latest.
        Raise NotFound when this registry has no such model or version."""
        raise NotImplementedError("metadata() is not implemented")

    def exists(self, name, version):
        """Whether this registry has the model (at `version` if not ""). Default: asks metadata()."""
        try:
            self.metadata(name, version)
            return True
        except Error as e:
            if e.code == "not_found":
                return False
            raise

    def list(self):
        """Every model: a list of ModelSummary (or dicts {name, versions, description})."""
        raise NotImplementedError("list() is not implemented")

    def download(self, req, sink):
        """Writes the bytes of req.file from req.offset to its end with sink.write()."""
        raise NotImplementedError("download() is not implemented")


class FunctionRegistry(FunctionTable, Registry):
    """A Registry made of functions, for authors who prefer decorators to a subclass:

        registry = FunctionRegistry()

        @registry.on("metadata")
        def metadata(name, version): ...

        @registry.on("list")
        def models(): ...

        @registry.on("download")
        def download(req, sink): ...

        sys.exit(run(registry, name="mine", version="1.0.0"))

    Methods: configure, metadata, exists, list, download (the same arguments as Registry's).
    Functions may also be given as keyword arguments: FunctionRegistry(metadata=f, ...).
    """

    METHODS = ("configure", "metadata", "exists", "list", "download")
    KIND = "registry"

    def configure(self, config):
        self._call("configure", super().configure, config)

    def metadata(self, name, version):
        return self._call("metadata", super().metadata, name, version)

    def exists(self, name, version):
        return self._call("exists", super().exists, name, version)

    def list(self):
        return self._call("list", super().list)

    def download(self, req, sink):
        return self._call("download", super().download, req, sink)


def sha256_file(path, block_size=1 << 20):
    """The SHA-256 (64 lowercase hex digits) of a file's contents."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(block_size), b""):
            h.update(block)
    return h.hexdigest()
