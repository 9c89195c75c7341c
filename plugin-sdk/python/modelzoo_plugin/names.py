"""Names and versions (docs/protocol.md, "Names and versions"), as bus/src/names.cc checks them.

Every check_* function returns None when the value is valid, else the reason (a string),
with the reference implementation's wording.
"""

import re

__all__ = ["check_model_name", "check_file_name", "check_version", "check_plugin_name",
           "SemVer", "glob_match"]

_SEG_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_ID_RE = re.compile(r"[0-9A-Za-z-]+\Z")
_NUM_RE = re.compile(r"(0|[1-9][0-9]*)\Z")


def _check_segments(what, s, max_len, max_segments):
    # Lengths count UTF-8 bytes, as the reference does; anything outside ASCII is refused.
    if not isinstance(s, str):
        return "%s is not a string" % what
    b = s.encode("utf-8", "surrogateescape")
    if not b:
        return "%s is empty" % what
    if len(b) > max_len:
        return "%s is longer than %d characters" % (what, max_len)
    segments = b.split(b"/")
    for seg in segments:
        if not seg:
            return "%s has an empty path segment" % what
        if seg in (b".", b".."):
            return "%s has a '%s' segment" % (what, seg.decode())
        if len(seg) > 64:
            return "%s has a segment longer than 64 characters" % what
        if seg[0] in b".-":
            return "%s has a segment starting with '%s'" % (what, chr(seg[0]))
        for c in seg:
            if c not in _SEG_CHARS:
                shown = chr(c) if 0x21 <= c < 0x7f else "\\x%02x" % c
                return "%s contains the character '%s'" % (what, shown)
    if len(segments) > max_segments:
        return "%s has more than %d segments" % (what, max_segments)
    return None


def check_model_name(name):
    """None if `name` is a model name (1 to 8 segments, at most 200 characters), else why not."""
    return _check_segments("model name", name, 200, 8)


def check_file_name(name):
    """None if `name` is a file name (1 to 16 segments, at most 255 characters), else why not."""
    if isinstance(name, str) and name.startswith("/"):
        return "file name is an absolute path"
    return _check_segments("file name", name, 255, 16)


def check_version(version):
    """None if `version` is a semantic version of at most 64 characters, else why not."""
    if not isinstance(version, str):
        return "version is not a string"
    if len(version.encode("utf-8", "surrogateescape")) > 64:
        return "version is longer than 64 characters"
    if SemVer.parse(version) is None:
        return "version '%s' is not a semantic version (MAJOR.MINOR.PATCH)" % version
    return None


def check_plugin_name(name):
    """None if `name` is a plugin (or source) name: [a-z0-9_-], 1 to 64, not starting with - or _."""
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        return "plugin name must have 1 to 64 characters"
    for c in name:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c in "-_"):
            return "plugin name '%s' may contain only a-z, 0-9, '-' and '_'" % name[:64]
    if name[0] in "-_":
        return "plugin name must start with a letter or digit"
    return None


def _identifiers(s, no_leading_zero):
    if not s:
        return False
    for ident in s.split("."):
        if not _ID_RE.match(ident):
            return False
        if no_leading_zero and ident.isdigit() and len(ident) > 1 and ident[0] == "0":
            return False
    return True


class SemVer:
    """A Semantic Versioning 2.0.0 version, ordered by precedence (build metadata ignored)."""

    __slots__ = ("major", "minor", "patch", "prerelease", "build")

    def __init__(self, major, minor, patch, prerelease="", build=""):
        self.major, self.minor, self.patch = major, minor, patch
        self.prerelease, self.build = prerelease, build

    @classmethod
    def parse(cls, s):
        """The version, or None when `s` is not a semantic version."""
        if not isinstance(s, str) or not s.isascii():
            return None
        build = prerelease = ""
        if "+" in s:
            s, build = s.split("+", 1)
            if not _identifiers(build, False):
                return None
        if "-" in s:
            s, prerelease = s.split("-", 1)
            if not _identifiers(prerelease, True):
                return None
        parts = s.split(".")
        if len(parts) != 3 or not all(_NUM_RE.match(p) for p in parts):
            return None
        nums = [int(p) for p in parts]
        if any(n >= 1 << 64 for n in nums):
            return None
        return cls(nums[0], nums[1], nums[2], prerelease, build)

    def _key(self):
        ids = []
        for ident in self.prerelease.split(".") if self.prerelease else ():
            ids.append((0, int(ident), "") if ident.isdigit() else (1, 0, ident))
        # A release sorts after every pre-release of the same core.
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, ids)

    def __lt__(self, other):
        return self._key() < other._key()

    def __le__(self, other):
        return self._key() <= other._key()

    def __gt__(self, other):
        return self._key() > other._key()

    def __ge__(self, other):
        return self._key() >= other._key()

    def __eq__(self, other):
        return isinstance(other, SemVer) and self._key() == other._key()

    def __hash__(self):
        return hash((self.major, self.minor, self.patch, self.prerelease))

    def __str__(self):
        s = "%d.%d.%d" % (self.major, self.minor, self.patch)
        if self.prerelease:
            s += "-" + self.prerelease
        if self.build:
            s += "+" + self.build
        return s

    def __repr__(self):
        return "SemVer(%r)" % str(self)


def glob_match(pattern, name):
    """The handles glob: `*` any sequence (also '/'), `?` one character, nothing else special."""
    pi = si = 0
    star, mark = -1, 0
    while si < len(name):
        if pi < len(pattern) and (pattern[pi] == "?" or pattern[pi] == name[si]):
            pi += 1
            si += 1
        elif pi < len(pattern) and pattern[pi] == "*":
            star, pi, mark = pi, pi + 1, si
        elif star >= 0:
            pi, mark = star + 1, mark + 1
            si = mark
        else:
            return False
    while pi < len(pattern) and pattern[pi] == "*":
        pi += 1
    return pi == len(pattern)
