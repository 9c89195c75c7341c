"""The protocol's test vectors (docs/protocol-vectors.json) against the Python codec.

valid: decoding the frames gives the message, and encoding the message gives the frames
byte for byte; noncanonical: decoding gives the message, encoding gives other bytes;
invalid: decoding fails (with the reference decoder's reason); events: the body frame is the
canonical encoding of the event's body.
"""

import json
import os
import unittest

import msgpack

from fake_daemon import SDK_DIR

from modelzoo_plugin import codec

SOURCE_DIR = os.environ.get("MODELZOO_SOURCE_DIR") or os.path.dirname(os.path.dirname(SDK_DIR))
VECTORS = os.path.join(SOURCE_DIR, "docs", "protocol-vectors.json")


def load():
    with open(VECTORS, encoding="utf-8") as f:
        return json.load(f)


def frames_of(vector):
    if "frames" in vector:
        return [bytes.fromhex(h) for h in vector["frames"]]
    g = vector["generate"]
    if g["kind"] == "oversized_str":
        pad = "x" * (g["bytes"] - 31)
        frame = msgpack.packb({"type": "heartbeat", "body": {"pad": pad}})  # over the limit: not via codec
        assert len(frame) == g["bytes"], (len(frame), g)
        return [frame]
    if g["kind"] == "oversized_data":
        return [codec.encode_envelope({"type": "chunk", "id": 1, "body": {"offset": 0}}), bytes(g["bytes"])]
    if g["kind"] == "long_array":
        return [msgpack.packb({"type": "heartbeat", "body": {"pad": [0] * g["entries"]}})]
    raise AssertionError("unknown generate kind %r" % g["kind"])


def message_of(vector):
    """The vector's message in this codec's form (data_hex becomes data)."""
    m = dict(vector["message"])
    if "data_hex" in m:
        m["data"] = bytes.fromhex(m.pop("data_hex"))
    return m


def same(a, b):
    """Equality that also tells a float from an int of the same value (2.0 != 2 on the wire)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@unittest.skipUnless(os.path.exists(VECTORS), "docs/protocol-vectors.json is not there")
class VectorsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = load()

    def test_file_format(self):
        self.assertEqual(self.v["version"], 1)
        for section in ("valid", "noncanonical", "invalid"):
            self.assertTrue(self.v[section], section)

    def test_valid_vectors_decode_and_encode_byte_for_byte(self):
        for vec in self.v["valid"]:
            with self.subTest(vec["name"]):
                frames = frames_of(vec)
                want = message_of(vec)
                got = codec.decode(frames)
                self.assertTrue(same(got, want), "decoded %r\nwanted  %r" % (got, want))
                self.assertEqual([f.hex() for f in codec.encode(want)], vec["frames"])

    def test_noncanonical_vectors_decode_but_encode_otherwise(self):
        for vec in self.v["noncanonical"]:
            with self.subTest(vec["name"]):
                frames = frames_of(vec)
                want = message_of(vec)
                got = codec.decode(frames)
                self.assertTrue(same(got, want), "decoded %r\nwanted  %r" % (got, want))
                self.assertNotEqual([f.hex() for f in codec.encode(want)], vec["frames"])
                self.assertEqual(codec.decode(codec.encode(want)), got)

    def test_invalid_vectors_are_rejected_for_the_reference_reason(self):
        for vec in self.v["invalid"]:
            with self.subTest(vec["name"]):
                frames = frames_of(vec)
                with self.assertRaises(codec.ProtocolError) as cm:
                    codec.decode(frames)
                self.assertIn(vec["reason"], str(cm.exception))

    def test_event_bodies_are_canonical(self):
        for vec in self.v.get("events", []):
            with self.subTest(vec["name"]):
                frames = [bytes.fromhex(h) for h in vec["frames"]]
                self.assertEqual(len(frames), 2)
                self.assertEqual(frames[0], vec["event"]["topic"].encode())
                body = codec.unpack(frames[1])
                self.assertTrue(same(body, vec["event"]["body"]))
                self.assertEqual(codec.pack(vec["event"]["body"]).hex(), vec["frames"][1])


if __name__ == "__main__":
    unittest.main()
