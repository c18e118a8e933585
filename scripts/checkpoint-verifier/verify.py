#!/usr/bin/env python3
"""An independent verifier of picket checkpoints (docs/checkpoints.md), written from the
documentation with Python's `cryptography`, not from picket's code.

    verify.py KEY NOTE [PREVIOUS_NOTE]

KEY is a verifier key as `picket host key` prints it (name+hash+base64 key); NOTE a
checkpoint as `GET /c/{id}/checkpoint` serves it. With PREVIOUS_NOTE, also checks that
NOTE extends it (sequence + 1, previous = SHA-256 of its body, no count lower). Prints
the checkpoint's fields as JSON and exits 0, or prints why and exits 1.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FIELDS = ["campaign", "declaration", "url", "signatures", "strikers", "published",
          "time", "sequence", "previous"]


def fail(why):
    print(why)
    sys.exit(1)


def open_note(vkey, note):
    name, key_id, key = vkey.strip().split("+", 2)  # base64 may hold "+"
    raw = base64.b64decode(key)
    if raw[0] != 0x01 or len(raw) != 33:
        fail("not an Ed25519 verifier key")
    expected_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if expected_id.hex() != key_id:
        fail("the key's hash does not match")
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    body, _, signatures = note.rpartition("\n\n")
    body += "\n"
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            fail("a signature line does not start with an em dash")
        signer, blob = line[2:].rsplit(" ", 1)
        blob = base64.b64decode(blob)
        if signer != name or blob[:4] != expected_id:
            continue
        try:
            public.verify(blob[4:], body.encode())
        except InvalidSignature:
            fail("bad signature")
        return body
    fail("not signed by this key")


def parse(body):
    lines = body.split("\n")
    if lines[0] != "picket checkpoint v1" or lines[-1] != "":
        fail("not a picket checkpoint")
    fields = {}
    for name, line in zip(FIELDS, lines[1:-1]):
        key, value = line.split(" ", 1)
        if key != name:
            fail(f"expected {name}, found {key}")
        fields[name] = int(value) if name in ("signatures", "strikers", "published",
                                                  "sequence") else value
    if len(fields) != len(FIELDS):
        fail("fields missing")
    fields["hash"] = hashlib.sha256(body.encode()).hexdigest()
    return fields


def main():
    vkey = open(sys.argv[1]).read()
    checkpoint = parse(open_note(vkey, open(sys.argv[2]).read()))
    if len(sys.argv) > 3:
        previous = parse(open_note(vkey, open(sys.argv[3]).read()))
        if checkpoint["sequence"] != previous["sequence"] + 1:
            fail("the sequence does not follow")
        if checkpoint["previous"] != previous["hash"]:
            fail("the chain does not link")
        for count in ("signatures", "strikers", "published"):
            if checkpoint[count] < previous[count]:
                fail(f"{count} went down")
    print(json.dumps(checkpoint))


main()
