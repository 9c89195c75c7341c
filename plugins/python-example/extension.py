#!/usr/bin/python3
"""python-example-policy: a modelzoo extension written in Python with the Python SDK.

Rejects models by name, and files by size, after they were downloaded and verified
(point `post-download`), so that nothing rejected reaches the cache. Configuration:

    deny: ["acme/*", "demo/bad"]   model-name globs (`*`, `?`) to reject
    reason: "not allowed here"     the reason shown to the user (default: "denied by policy")
    max_file_bytes: N              reject a model with a file larger than N bytes

Run it as a source of kind extension:

    - name: policy
      command: [/usr/bin/python3, /path/to/plugins/python-example/extension.py]
      kind: extension
      config: {deny: ["demo/*"], reason: "demo models are not allowed"}
"""

import os
import sys

try:
    import modelzoo_plugin as mp
except ImportError:  # running from the source tree: the SDK is at <repo>/plugin-sdk/python
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "plugin-sdk", "python"))
    import modelzoo_plugin as mp


class Policy(mp.Extension):
    def __init__(self):
        self.deny, self.reason, self.max_file_bytes = [], "denied by policy", None

    def configure(self, config):
        deny = config.get("deny", [])
        if not isinstance(deny, list) or not all(isinstance(p, str) for p in deny):
            raise ValueError("'deny' must be a list of model-name patterns")
        self.deny = deny
        self.reason = str(config.get("reason", self.reason))
        limit = config.get("max_file_bytes")
        if limit is not None and (type(limit) is not int or limit < 0):
            raise ValueError("'max_file_bytes' must be a non-negative integer")
        self.max_file_bytes = limit

    def hook(self, req):
        for pattern in self.deny:
            if mp.glob_match(pattern, req.name):
                return mp.HookResult.reject("%s (%s matches '%s')" % (self.reason, req.name, pattern))
        if self.max_file_bytes is not None:
            for f in req.files:
                if f.size > self.max_file_bytes:
                    return mp.HookResult.reject("%s: %d bytes, more than %d" % (f.name, f.size, self.max_file_bytes))
        return mp.HookResult.proceed("%d file(s) checked" % len(req.files))


if __name__ == "__main__":
    sys.exit(mp.run(Policy(), name="python-example-policy", version="0.1.0", points=[mp.POST_DOWNLOAD]))
