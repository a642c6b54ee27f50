#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora (tests/fuzz/corpus/NAME/*).

Seeds are valid inputs that reach deep: O2 messages of every type, bundles,
the process and O2lite protocol messages, config files, and MQTT /disc
payloads (with a few broken ones next to them). Run it again
after changing it; the files are committed.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def pad(b):
    b += b"\0"
    return b + b"\0" * (-len(b) % 4)


def msg(address, types, args, t=0.0, misc=1):
    body = b""
    args = iter(args)
    for ty in types:
        if ty in "TFNI[]":
            continue
        v = next(args)
        if ty == "i":
            body += struct.pack(">i", v)
        elif ty == "f":
            body += struct.pack(">f", v)
        elif ty in "dt":
            body += struct.pack(">d", v)
        elif ty == "h":
            body += struct.pack(">q", v)
        elif ty in "sS":
            body += pad(v.encode())
        elif ty == "b":
            body += struct.pack(">I", len(v)) + v + b"\0" * (-len(v) % 4)
        elif ty in "cm":
            body += struct.pack(">I", v)
        elif ty == "B":
            body += struct.pack(">i", 1 if v else 0)
    return struct.pack(">Id", misc, t) + pad(address.encode()) + pad(("," + types).encode()) + body


def bundle(elements, t=0.0):
    out = struct.pack(">Id", 1, t) + pad(b"#bundle") + pad(b",")
    for e in elements:
        out += struct.pack(">I", len(e)) + e
    return out


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for i, s in enumerate(seeds):
        with open(os.path.join(d, "seed-%02d" % i), "wb") as f:
            f.write(s)


def framed(seq):
    """fuzz_proto's input: a flag byte, then (link, 2-byte length, bytes) per message."""
    out = b"\x01"
    for link, m in seq:
        out += bytes([link]) + struct.pack(">H", len(m)) + m
    return out


user = [
    msg("/s/a", "ifs", [1, 1.5, "hi"]),
    msg("!s/a/b", "hdtSc", [1 << 40, 2.5, 3.0, "sym", 65]),
    msg("/s/*/x{a,b}[0-9]", "bmB", [b"\x01\x02\x03", 0x903c40, True]),
    msg("/s/none", "", []),
    msg("/s/t", "TFNI", []),
    msg("/s/v", "", [])[:-4] + pad(b",vi") + struct.pack(">iii", 8, 1, 2),
    msg("/s/arr", "[if]", [3, 0.5]),
    bundle([msg("/s/a", "i", [1]), msg("/s/b", "s", ["x"])], t=1.0),
    bundle([bundle([msg("/s/a", "i", [1])])]),
]
write("msg", user)

peer = "@00000000:7f000001:2000"
proto = [
    framed([(0, msg("!_o2/sv", "sSTTsi".replace("S", "s"), [peer, "svc", ";k:v;", 0]))]),
    framed([(0, msg("!_o2/sv", "ssTFsisFFsi", [peer, "spy", "svc", 1, "svc", "", 0]))]),
    framed([(0, msg("!_o2/cs/cs", "s", [peer]))]),
    framed([(0, msg("!_cs/get", "is", [1, "!" + peer + "/cs/put"])),
            (0, msg("!_o2/si", "siss", ["svc", 4, "_o2", ""]))]),
    framed([(1, msg("!_o2/dy", "sissiii", ["fuzz", 0x020001, "00000000", "7f000001", 0x3000, 0x3000, 54]))]),
    framed([(1, msg("!_o2/o2lite/con", "si", ["7f000001", 0x4000])),
            (1, msg("!_o2/o2lite/sv", "siisi", ["imu", 1, 1, "", 0])),
            (1, msg("!_o2/o2lite/sv", "siisi", ["imu", 1, 0, "svc", 2])),
            (0, msg("!_o2/o2lite/cs/get", "iis", [1, 7, "!_o2/cs/put"], misc=0)),
            (1, msg("!_o2/o2lite/cs/cs", "", [])),
            (1, msg("!_o2/o2lite/st", "s", ["imu"])),
            (1, msg("!_o2/o2lite/ls", "", [])),
            (1, msg("/imu/x", "fffffff", [0.1] * 7, t=5.0)),
            (1, msg("!_o2/o2lite/sv", "siisi", ["imu", 0, 1, "", 0]))]),
    framed([(0, msg("/svc/x", "i", [1], misc=0x301)), (0, bundle([msg("/svc/y", "i", [2])]))]),
]
write("proto", proto)

configs = [
    b'{"ensemble": "demo", "log_level": "info", "plugin_path": ["../build/transports"],\n'
    b' "transports": [{"type": "tcp", "host": "127.0.0.1", "port": 50001},\n'
    b'                {"type": "udp", "host": "127.0.0.1", "port": 50001}],\n'
    b' "discovery": [{"type": "static", "peers": ["127.0.0.1:50002"]}],\n'
    b' "services": [{"name": "alpha", "properties": {"role": "a", "x": "1;2"}}],\n'
    b' "clock": {"reference": true}}\n',
    b'{"ensemble": "e", "plugins": [{"type": "skeleton", "required": false, "file": "x.so"}]}',
    b'{"ensemble": "e", "ensemble": "dup"}',
    b'{"ensemble": 5, "unknown": [1, 2, {"a": null}]}',
]
write("config", configs)

# The O2lite client (sdk/o2lite): messages a host sends a client.
o2lite = [
    msg("!_o2/id", "i", [1], misc=0x103),
    msg("!_o2/cs/put", "it", [1, 12.5], misc=0x102),
    msg("!_o2/dy", "sissiii", ["ens", 0x020001, "00000000", "7f000001", 4000, 4001, 50], misc=0),
    msg("/s/all", "ifsdhtBTFbcmS",
        [-2, 1.5, "hi", 1.5, -2, 3.25, True, b"\1\2\3\4\5", 65, 0x903C7F, "sym"], misc=0x103),
    struct.pack(">Id", 0x102, 0.0) + pad(b"!s/v") + pad(b",vi") + struct.pack(">Iii", 8, 1, 2),
    msg("/s", "", [], misc=0x102),
]
write("o2lite", o2lite)


def osc_msg(address, types, args):
    body = b""
    for ty, v in zip(types, args):
        if ty == "i":
            body += struct.pack(">i", v)
        elif ty == "f":
            body += struct.pack(">f", v)
        elif ty in "s":
            body += pad(v.encode())
        elif ty == "b":
            body += struct.pack(">I", len(v)) + v + b"\0" * (-len(v) % 4)
        elif ty == "h":
            body += struct.pack(">q", v)
        elif ty == "t":
            body += struct.pack(">Q", v)
        elif ty == "d":
            body += struct.pack(">d", v)
    return pad(address.encode()) + pad(("," + types).encode()) + body


def osc_bundle(tag, elements):
    out = pad(b"#bundle") + struct.pack(">Q", tag)
    for e in elements:
        out += struct.pack(">I", len(e)) + e
    return out


def slip(p):
    return b"\xc0" + p.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


m1 = osc_msg("/freq", "fs", [440.5, "hello"])
m2 = osc_msg("/all", "ihfdsbt", [1, 1 << 40, 0.5, 2.5, "x", b"\x01\x02", (3900000000 << 32)])
m3 = osc_msg("/flags", "TFNI", [])
b1 = osc_bundle(1, [m1, osc_bundle((3900000001 << 32), [m2, m3])])
write("osc", [
    b"\x00" + m1, b"\x00" + m2, b"\x00" + m3, b"\x00" + b1,
    b"\x01" + struct.pack(">I", len(m1)) + m1 + struct.pack(">I", len(b1)) + b1,
    b"\x02" + slip(m2) + slip(b1),
])


def ws_frame(opcode, payload, mask=b"\x11\x22\x33\x44", fin=True):
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


ETX = b"\x03"
dy = ETX.join([b"/_o2/ws/dy", b"s", b"0", b"T", b"demo"]) + ETX
msg = ETX.join([b"/svc/x", b"ifdsBTt", b"1.5", b"F", b"7", b"2.5", b"3.25", b"hi", b"1", b"", b"4"]) + ETX
sv = ETX.join([b"/_o2/ws/sv", b"siisi", b"0", b"T", b"browser", b"1", b"1", b"", b"0"]) + ETX
write("ws", [
    b"\x00" + ws_frame(1, dy) + ws_frame(1, sv) + ws_frame(1, msg),
    b"\x00" + ws_frame(1, msg[:10], fin=False) + ws_frame(9, b"p") + ws_frame(0, msg[10:]),
    b"\x00" + ws_frame(8, struct.pack(">H", 1000) + b"bye"),
    b"\x01/index.html", b"\x01/a/b%20c.js?x=1", b"\x01/%2e%2e/etc/passwd", b"\x01/sdk/",
])

# MQTT /disc payloads as the parser gets them (after O2's 2 leading bytes):
# announcements in every form it accepts, then near misses it must refuse.
name = b"@c0a80105:c0a80105:d431"
write("mqtt_disc", [
    name + b":d432/dy/2.0.1",
    name + b":d432/cs/2.0.1",
    b"@0a000002:c0a80002:1f90:1/dy/255.255.255",
    b"@0a000002:c0a80002:1f90:ffff/cs/2.10.0",
    name + b"/bye",
    name + b":d432/dy/2.0",          # a version of two parts is accepted
    name + b":D432/dy/2.0.1",        # uppercase hex
    name + b":1d432/dy/2.0.1",       # five udp digits
    name + b":d432/xx/2.0.1",        # neither dy nor cs
    name + b":d432/dy/256.0.1",      # a version part past 255
    b"@c0a80105:c0a80105:0000/bye",  # tcp port 0
    name + b"/bye\0",                # a byte after the bye
    name[:-1],                       # a truncated name
])
