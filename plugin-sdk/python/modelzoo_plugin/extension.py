"""Extensions: plugins that hook a model's life (docs/protocol.md, "Extension hooks"; docs/extensions.md)."""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .errors import BadRequest
from .functions import FunctionTable
from .names import check_file_name, check_model_name, check_version

__all__ = ["PRE_DOWNLOAD", "POST_DOWNLOAD", "PRE_LOAD", "POST_LOAD", "POINTS", "HookFile", "HookRequest",
           "OutputFile", "HookResult", "Extension", "FunctionExtension", "file_format", "parse_hook_request"]

PRE_DOWNLOAD = "pre-download"
POST_DOWNLOAD = "post-download"
PRE_LOAD = "pre-load"
POST_LOAD = "post-load"
POINTS = (PRE_DOWNLOAD, POST_DOWNLOAD, PRE_LOAD, POST_LOAD)


def file_format(file_name):
    """The format of a file name: the suffix after the last '.' of its base name, lowercase; "" if none."""
    base = file_name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    if dot <= 0 or dot + 1 == len(base):
        return ""
    return base[dot + 1:].lower()


@dataclass
class HookFile:
    """One file of the model as the hook sees it. Treat `path` as read-only."""
    name: str
    path: str = ""       # absolute; "" at pre-download
    size: int = 0
    sha256: str = ""     # "" for a file an earlier hook produced
    format: str = ""     # file_format(name)


@dataclass
class HookRequest:
    point: str                      # one of POINTS
    name: str                       # the model
    version: str                    # at pre-download as requested ("" for the latest)
    metadata: Dict[str, Any] = field(default_factory=dict)  # {} at pre-download
    files: List[HookFile] = field(default_factory=list)     # [] at pre-download
    output_dir: str = ""            # post-download only: an empty directory for replacement files
    deadline: Optional[float] = None  # time.monotonic() at which the daemon gives up; None: no deadline
    body: Dict[str, Any] = field(default_factory=dict)      # the request body as received


@dataclass
class OutputFile:
    """A replacement file: `path` is a file of the request or a regular file written in output_dir."""
    name: str
    path: str

    def to_dict(self):
        return {"name": self.name, "path": os.fspath(self.path)}


class HookResult:
    """The answer to a hook. Build one with proceed(), reject(), replace() or rewrite()."""

    def __init__(self, action="continue", reason="", files=(), name="", version="", message=""):
        self.action, self.reason, self.message = action, reason, message
        self.files = [_output_file(f) for f in files]
        self.name, self.version = name, version

    @classmethod
    def proceed(cls, message=None):
        """Carry on with the model (action `continue`)."""
        return cls(message=message or "")

    @classmethod
    def reject(cls, reason):
        """Refuse the model: the pull or load fails with `rejected` and `reason`."""
        return cls(action="reject", reason=reason)

    @classmethod
    def replace(cls, files, message=None):
        """post-download only: the model's complete new file list (OutputFile, (name, path) or dicts)."""
        return cls(action="replace", files=files, message=message or "")

    @classmethod
    def rewrite(cls, name, version="", message=None):
        """pre-download only: pull `name` at `version` ("" for the latest) instead."""
        return cls(action="rewrite", name=name, version=version, message=message or "")

    def to_dict(self):
        d = {"action": self.action}
        if self.message:
            d["message"] = self.message
        if self.action == "reject":
            d["reason"] = self.reason
        if self.action == "replace":
            d["files"] = [f.to_dict() for f in self.files]
        if self.action == "rewrite":
            d["name"] = self.name
            d["version"] = self.version
        return d

    def __repr__(self):
        return "HookResult(%r)" % (self.to_dict(),)


def _output_file(f):
    if isinstance(f, OutputFile):
        return f
    if isinstance(f, dict):
        return OutputFile(f["name"], f["path"])
    name, path = f
    return OutputFile(name, path)


class Extension:
    """Subclass and override hook() (and configure() if useful).

    hook() runs on several worker threads at once and must be thread-safe. A verdict on the
    model is a HookResult (HookResult.reject(reason)); a failure of the extension itself is an
    exception: Error with a code, anything else becomes `internal`.
    """

    def configure(self, config):
        """As Registry.configure: once, after the welcome, before any hook."""

    def hook(self, req):
        """Returns a HookResult for `req` (a HookRequest)."""
        raise NotImplementedError("hook() is not implemented")


def _require_string(body, key):
    v = body.get(key)
    if not isinstance(v, str):
        raise BadRequest("request lacks string parameter '%s'" % key)
    return v


def parse_hook_request(body, deadline=None):
    """A HookRequest from a hook request body; raises BadRequest naming the missing or mistyped field."""
    point = _require_string(body, "point")
    if point not in POINTS:
        raise BadRequest("unknown extension point '%s'" % point[:64])
    name = _require_string(body, "name")
    why = check_model_name(name)
    if why:
        raise BadRequest(why)
    version = body.get("version")
    if version is None:
        version = ""
    if not isinstance(version, str):
        raise BadRequest("parameter 'version' is not a string")
    if version and check_version(version):
        raise BadRequest(check_version(version))
    req = HookRequest(point=point, name=name, version=version, deadline=deadline, body=body)
    if isinstance(body.get("metadata"), dict):
        req.metadata = body["metadata"]
    files = body.get("files")
    if files is not None:
        if not isinstance(files, list):
            raise BadRequest("parameter 'files' is not an array")
        for f in files:
            if not isinstance(f, dict):
                raise BadRequest("an entry of 'files' is not a map")
            hf = HookFile(name=_require_string(f, "name"))
            why = check_file_name(hf.name)
            if why:
                raise BadRequest(why)
            if "path" in f:
                hf.path = _require_string(f, "path")
            size = f.get("size")
            if size is not None:
                if type(size) is not int or size < 0:
                    raise BadRequest("parameter 'size' is not a non-negative integer")
                hf.size = size
            if isinstance(f.get("sha256"), str):
                hf.sha256 = f["sha256"]
            hf.format = file_format(hf.name)
            req.files.append(hf)
    if isinstance(body.get("output_dir"), str):
        req.output_dir = body["output_dir"]
    return req


class FunctionExtension(FunctionTable, Extension):
    """An Extension made of functions:

        ext = FunctionExtension()

        @ext.on("hook")
        def hook(req): return HookResult.proceed()

    Methods: configure, hook. Functions may also be keyword arguments: FunctionExtension(hook=f).
    """

    METHODS = ("configure", "hook")
    KIND = "extension"

    def configure(self, config):
        self._call("configure", super().configure, config)

    def hook(self, req):
        return self._call("hook", super().hook, req)
