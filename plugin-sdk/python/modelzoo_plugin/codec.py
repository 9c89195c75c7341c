"""The bus envelope (docs/protocol.md, "Message envelope" and "Limits").

A message is a dict:

    {"type": str, "body": dict}                        every type
    + "id": int                                        request reply error progress chunk credit cancel
    + "method": str, "timeout_ms": int                 request
    + "error": {"code": str, "message": str}           error reject
    + "data": bytes                                    chunk (the second frame)

`decode(frames)` validates exactly as the reference decoder (bus/src/message.cc) does and
raises ProtocolError naming the problem; it returns only the fields above (unknown envelope
fields are ignored). `encode(message)` produces the reference encoder's bytes: the envelope
fields in the order type, id, method, timeout_ms, error, body (only those the type has), the
keys of every map inside `body` sorted by their UTF-8 bytes, integers in their smallest
format, floats always as float64, text as str and bytes as bin.
"""

import os

import msgpack

__all__ = [
    "PROTOCOL_VERSION", "MAX_ENVELOPE_BYTES", "MAX_DATA_BYTES", "MAX_FRAMES", "MAX_DEPTH", "MAX_ENTRIES",
    "MAX_METHOD_BYTES", "MESSAGE_TYPES", "ERROR_CODES", "ProtocolError", "pack", "unpack",
    "encode", "encode_envelope", "decode", "decode_envelope",
]

PROTOCOL_VERSION = 1
MAX_ENVELOPE_BYTES = 1 << 20   # 1 MiB
MAX_DATA_BYTES = 8 << 20       # 8 MiB
MAX_FRAMES = 2                 # envelope + data
MAX_DEPTH = 32                 # nesting of containers (empty ones too), the envelope being level 1
MAX_ENTRIES = 65536            # per array or map
MAX_METHOD_BYTES = 64
UINT32_MAX = (1 << 32) - 1
UINT64_MAX = (1 << 64) - 1

MESSAGE_TYPES = ("hello", "welcome", "reject", "request", "reply", "error",
                 "progress", "chunk", "credit", "cancel", "heartbeat", "goodbye")
ERROR_CODES = ("not_found", "unavailable", "timeout", "bad_request", "unauthorized", "internal", "rejected")

_ID_TYPES = frozenset(("request", "reply", "error", "progress", "chunk", "credit", "cancel"))
_ERROR_TYPES = frozenset(("error", "reject"))
# Text MUST be UTF-8 (Encoding rules): a str that is not is refused both ways.
_TEXT_ERRORS = "strict"


class ProtocolError(ValueError):
    """Bytes from a peer that do not form a valid message. str() names the problem."""


# ---------------------------------------------------------------------------------------------
# msgpack values


def _utf8(s):
    return s.encode("utf-8", _TEXT_ERRORS)


def _canonical(value, level):
    """`value` rebuilt from plain types with every map's keys in UTF-8 byte order; checks limits.

    `level` is the nesting level `value` would have if it is a container.
    """
    if value is None or isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        if not -(1 << 63) <= value <= UINT64_MAX:
            raise ValueError("integer %d does not fit in 64 bits" % value)
        return int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict):
        if level > MAX_DEPTH:
            raise ValueError("value nests deeper than %d levels" % MAX_DEPTH)
        if len(value) > MAX_ENTRIES:
            raise ValueError("a map has more than %d entries" % MAX_ENTRIES)
        for k in value:
            if not isinstance(k, str):
                raise TypeError("map key %r is not a string" % (k,))
        return {k: _canonical(value[k], level + 1) for k in sorted(value, key=_utf8)}
    if isinstance(value, (list, tuple)):
        if level > MAX_DEPTH:
            raise ValueError("value nests deeper than %d levels" % MAX_DEPTH)
        if len(value) > MAX_ENTRIES:
            raise ValueError("an array has more than %d entries" % MAX_ENTRIES)
        return [_canonical(v, level + 1) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _canonical(to_dict(), level)
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        return path if isinstance(path, str) else os.fsdecode(path)
    raise TypeError("cannot encode a value of type %s" % type(value).__name__)


def _packer():
    return msgpack.Packer(use_bin_type=True, use_single_float=False, strict_types=False,
                          unicode_errors=_TEXT_ERRORS)


def pack(value):
    """The canonical msgpack encoding of one value (maps sorted by key, smallest integers)."""
    return _packer().pack(_canonical(value, 1))


def _pairs(pairs):
    d = {}
    for k, v in pairs:
        if not isinstance(k, str):
            raise ProtocolError("map key is not a string")
        if k in d:
            raise ProtocolError("duplicate map key '%s'" % k[:64])
        d[k] = v
    return d


def _no_ext(code, data):
    raise ProtocolError("not valid msgpack: extension types are not allowed")


def _check_nesting(value):
    # Iterative, so that a hostile value cannot exhaust Python's recursion limit.
    stack = [(value, 1)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, dict):
            items = v.values()
        elif isinstance(v, list):
            items = v
        elif v is None or isinstance(v, (bool, int, float, str, bytes)):
            continue
        else:
            raise ProtocolError("not valid msgpack: extension types are not allowed")
        if level > MAX_DEPTH:
            raise ProtocolError("not valid msgpack: depth size overflow (containers nest deeper than %d levels)"
                                % MAX_DEPTH)
        stack.extend((c, level + 1) for c in items)


def _as_bytes(frame):
    if isinstance(frame, bytes):
        return frame
    buf = getattr(frame, "buffer", None)  # zmq.Frame
    return bytes(buf if buf is not None else frame)


def unpack(data):
    """Decodes one msgpack value (an envelope frame) with the protocol's limits, or raises ProtocolError."""
    data = _as_bytes(data)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise ProtocolError("frame of %d bytes exceeds the 1 MiB limit" % len(data))
    if not data:
        raise ProtocolError("empty frame")
    try:
        value = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=False, object_pairs_hook=_pairs,
            ext_hook=_no_ext, unicode_errors=_TEXT_ERRORS,
            max_str_len=MAX_ENVELOPE_BYTES, max_bin_len=MAX_ENVELOPE_BYTES,
            max_array_len=MAX_ENTRIES, max_map_len=MAX_ENTRIES, max_ext_len=0)
    except ProtocolError:
        raise
    except msgpack.ExtraData:
        raise ProtocolError("trailing bytes after the msgpack value") from None
    except UnicodeDecodeError:
        raise ProtocolError("a string is not valid UTF-8") from None
    except msgpack.StackError:
        raise ProtocolError("not valid msgpack: depth size overflow") from None
    except Exception as e:  # OutOfData, FormatError, ValueError, ...
        text = str(e) or type(e).__name__
        # The reference decoder's words for the limits (msgpack-c's exceptions).
        for limit, words in (("max_ext_len", "extension types are not allowed"),
                             ("max_array_len", "array size overflow"), ("max_map_len", "map size overflow"),
                             ("max_str_len", "str size overflow"), ("max_bin_len", "bin size overflow")):
            if limit in text:
                text = "%s (%s)" % (words, text)
                break
        raise ProtocolError("not valid msgpack: %s" % text) from None
    _check_nesting(value)
    return value


# ---------------------------------------------------------------------------------------------
# Envelopes


def _uint(v):
    return type(v) is int and v >= 0


def encode_envelope(message):
    """The envelope frame of `message` (a dict as described in this module's docstring)."""
    t = message.get("type")
    if t not in MESSAGE_TYPES:
        raise ValueError("unknown message type %r" % (t,))
    env = {"type": t}
    if t in _ID_TYPES:
        mid = message.get("id", 0)
        if not _uint(mid) or mid > UINT64_MAX:
            raise ValueError("message id %r is not an unsigned 64-bit integer" % (mid,))
        env["id"] = mid
    if t == "request":
        method = message.get("method", "")
        timeout = message.get("timeout_ms", 0)
        if not isinstance(method, str):
            raise ValueError("request method is not a string")
        if not _uint(timeout) or timeout > UINT32_MAX:
            raise ValueError("timeout_ms %r is not an unsigned 32-bit integer" % (timeout,))
        env["method"] = method
        env["timeout_ms"] = timeout
    if t in _ERROR_TYPES:
        err = message.get("error") or {}
        code = err.get("code", "internal")
        if code not in ERROR_CODES:
            raise ValueError("unknown error code %r" % (code,))
        text = err.get("message", "")
        env["error"] = {"code": code, "message": text if isinstance(text, str) else str(text)}
    body = message.get("body")
    if body is None:
        body = {}
    if not isinstance(body, dict) and callable(getattr(body, "to_dict", None)):
        body = body.to_dict()
    if not isinstance(body, dict):
        raise TypeError("message body is a %s, not a dict" % type(body).__name__)
    env["body"] = _canonical(body, 2)
    out = _packer().pack(env)
    if len(out) > MAX_ENVELOPE_BYTES:
        raise ValueError("encoded envelope of %d bytes exceeds the 1 MiB limit" % len(out))
    return out


def encode(message):
    """The frames of `message`: [envelope] or, for a chunk, [envelope, data]."""
    env = encode_envelope(message)
    if message["type"] == "chunk":
        data = message.get("data")
        if data is None:
            raise ValueError("chunk message without data")
        if len(data) > MAX_DATA_BYTES:
            raise ValueError("chunk data of %d bytes exceeds the 8 MiB limit" % len(data))
        return [env, data]
    if message.get("data") is not None:
        raise ValueError("%s message cannot carry a data frame" % message["type"])
    return [env]


def _field(env, key, tn):
    if key not in env:
        raise ProtocolError("%s message lacks field '%s'" % (tn, key))
    return env[key]


def _string_field(env, key, tn):
    v = _field(env, key, tn)
    if not isinstance(v, str):
        raise ProtocolError("%s message field '%s' is not a string" % (tn, key))
    return v


def _uint_field(env, key, tn, maximum):
    v = _field(env, key, tn)
    if not _uint(v) or v > maximum:
        raise ProtocolError("%s message field '%s' is not an unsigned integer <= %d" % (tn, key, maximum))
    return v


def decode_envelope(data):
    """Decodes and validates one envelope frame; returns the message dict (without `data`)."""
    env = unpack(data)
    if not isinstance(env, dict):
        raise ProtocolError("envelope is not a map")
    t = _string_field(env, "type", "any")
    if t not in MESSAGE_TYPES:
        raise ProtocolError("unknown message type '%s'" % t[:32])
    msg = {"type": t, "body": {}}
    if "body" in env:
        if not isinstance(env["body"], dict):
            raise ProtocolError("%s message body is not a map" % t)
        msg["body"] = env["body"]
    if t == "request":
        method = _string_field(env, "method", t)
        if not 1 <= len(_utf8(method)) <= MAX_METHOD_BYTES:
            raise ProtocolError("request method name is empty or longer than 64 bytes")
        msg["method"] = method
        msg["timeout_ms"] = _uint_field(env, "timeout_ms", t, UINT32_MAX)
    if t in _ID_TYPES:
        msg["id"] = _uint_field(env, "id", t, UINT64_MAX)
        if t != "error" and msg["id"] == 0:
            raise ProtocolError("%s message has id 0" % t)
    if t in _ERROR_TYPES:
        err = _field(env, "error", t)
        if not isinstance(err, dict):
            raise ProtocolError("%s message field 'error' is not a map" % t)
        code = _string_field(err, "code", "error")
        if code not in ERROR_CODES:
            raise ProtocolError("unknown error code '%s'" % code[:32])
        msg["error"] = {"code": code, "message": _string_field(err, "message", "error")}
    return msg


def decode(frames):
    """Decodes and validates a message's frames (no routing id); returns the message dict."""
    frames = list(frames)
    if not frames:
        raise ProtocolError("no frames")
    if len(frames) > MAX_FRAMES:
        raise ProtocolError("message has %d frames, at most 2 allowed" % len(frames))
    msg = decode_envelope(frames[0])
    if msg["type"] == "chunk":
        if len(frames) != 2:
            raise ProtocolError("chunk message lacks its data frame")
        data = _as_bytes(frames[1])
        if len(data) > MAX_DATA_BYTES:
            raise ProtocolError("chunk data frame exceeds the 8 MiB limit")
        msg["data"] = data
    elif len(frames) != 1:
        raise ProtocolError("%s message carries an unexpected data frame" % msg["type"])
    return msg
