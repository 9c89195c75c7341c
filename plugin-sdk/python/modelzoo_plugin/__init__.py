"""modelzoo_plugin: the Python plugin SDK of modelzoo (docs/protocol.md; the C++ SDK's twin).

A registry:

    import sys
    from modelzoo_plugin import Registry, ModelMetadata, FileInfo, ModelSummary, NotFound, run

    class Mine(Registry):
        def configure(self, config): ...
        def metadata(self, name, version): ...      # -> ModelMetadata or dict; raise NotFound
        def list(self): ...                         # -> [ModelSummary or dict]
        def download(self, req, sink): ...          # sink.write(bytes), paced by credit

    sys.exit(run(Mine(), name="mine", version="1.0.0", priority=0, handles=["*"]))

An extension:

    class Judge(Extension):
        def hook(self, req): return HookResult.reject("...") if ... else HookResult.proceed()

    sys.exit(run(Judge(), name="judge", version="1.0.0", points=["post-download"]))

Exit statuses of run(): 0 clean stop (goodbye, SIGTERM/SIGINT), 1 configuration rejected,
2 no MODELZOO_ENDPOINT, 3 hello rejected / no welcome / protocol mismatch, 4 daemon silent.
Needs pyzmq and msgpack (Debian: python3-zmq, python3-msgpack; run with /usr/bin/python3).
"""

from .codec import ERROR_CODES, PROTOCOL_VERSION, ProtocolError
from .errors import BadRequest, Error, Internal, NotFound, Timeout, Unavailable
from .extension import (POINTS, POST_DOWNLOAD, POST_LOAD, PRE_DOWNLOAD, PRE_LOAD, Extension, FunctionExtension,
                        HookFile, HookRequest, HookResult, OutputFile, file_format, parse_hook_request)
from .names import SemVer, check_file_name, check_model_name, check_plugin_name, check_version, glob_match
from .registry import (ChunkSink, DownloadRequest, FileInfo, FunctionRegistry, ModelMetadata, ModelSummary,
                       Registry, sha256_file)
from .session import (EXIT_CONFIG_REJECTED, EXIT_DAEMON_SILENT, EXIT_NO_ENDPOINT, EXIT_OK, EXIT_REJECTED, log,
                      run)

__version__ = "0.1.0"

__all__ = [
    "run", "log", "Registry", "FunctionRegistry", "Extension", "FunctionExtension",
    "Error", "NotFound", "Unavailable", "Timeout", "BadRequest", "Internal", "ERROR_CODES", "ProtocolError",
    "ModelMetadata", "FileInfo", "ModelSummary", "DownloadRequest", "ChunkSink", "sha256_file",
    "HookRequest", "HookFile", "HookResult", "OutputFile", "file_format", "parse_hook_request",
    "POINTS", "PRE_DOWNLOAD", "POST_DOWNLOAD", "PRE_LOAD", "POST_LOAD",
    "SemVer", "check_model_name", "check_file_name", "check_version", "check_plugin_name", "glob_match",
    "EXIT_OK", "EXIT_CONFIG_REJECTED", "EXIT_NO_ENDPOINT", "EXIT_REJECTED", "EXIT_DAEMON_SILENT",
    "PROTOCOL_VERSION",
]
