#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/).

    tests/fuzz/make_corpus.py --fixture build/tests/http/http_fixture

Every seed is a small real input of the kind each parser takes: images
made here (PNG, GIF) or by stb_image_write through the HTTP tests' fixture
(JPEG, BMP), JSON and multipart bodies as clients send them, model files
written by the real nn/ writer (tiny architectures), IDX files raw and
gzipped, request paths. The corpora are committed; run this again only to
change them (it rewrites the seed files it makes and leaves others, such as
inputs a fuzzer added, alone). Two image seeds are not made here:
progressive.jpg and arithmetic.jpg were written once from gray.bmp with
libjpeg-turbo's cjpeg (`cjpeg -progressive` / `-arithmetic`, Debian's
libjpeg-turbo-progs), so that libjpeg's multi-scan and arithmetic decoders
are in the corpus; sequential-three-scans.jpg is a 16x16 colour ramp
written with `cjpeg -scans` (one scan per component), and
regressions/*/jpeg-eoi-before-chroma-scans the same file cut (EOI) after
its first scan.

    tests/fuzz/make_corpus.py --fixture ... --hostile

also (re)writes the hostile inputs of issue 10 into tests/fuzz/regressions/
(fuzz_image, fuzz_predict_image, fuzz_predict_json): images that made
stb_image decode uninitialised memory or burn seconds of CPU, and JSON the
old fast path read differently from cJSON."""
import argparse
import base64
import gzip
import json
import os
import struct
import subprocess
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def png(w, h, rows, color_type=0, bit_depth=8, palette=None):
    raw = b"".join(b"\0" + bytes(r) for r in rows)

    def chunk(t, d):
        return (struct.pack(">I", len(d)) + t + d +
                struct.pack(">I", zlib.crc32(t + d) & 0xffffffff))
    out = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    if palette:
        out += chunk(b"PLTE", palette)
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def png_interlaced(w, h, gray):
    """An 8-bit gray Adam7-interlaced PNG of the w*h values in gray."""
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                           (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)):
        xs = range(x0, w, dx)
        if not xs:
            continue
        for y in range(y0, h, dy):
            raw += b"\0" + bytes(gray[y * w + x] for x in xs)

    def chunk(t, d):
        return (struct.pack(">I", len(d)) + t + d +
                struct.pack(">I", zlib.crc32(t + d) & 0xffffffff))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 1)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def gif(w, h, gray):
    palette = b"".join(bytes((i, i, i)) for i in range(256))
    codes = []
    for i, v in enumerate(gray):
        if i % 250 == 0:
            codes.append(256)
        codes.append(v)
    codes.append(257)
    bits, nbits, out = 0, 0, bytearray()
    for c in codes:
        bits |= c << nbits
        nbits += 9
        while nbits >= 8:
            out.append(bits & 0xff)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xff)
    blocks = b"".join(bytes((len(out[i:i + 255]),)) + bytes(out[i:i + 255])
                      for i in range(0, len(out), 255))
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0xf7, 0, 0) + palette +
            b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x08" + blocks + b"\x00;")


def digit(side):
    """A '7'-like stroke, ink 255 on 0, side x side values."""
    px = [0] * (side * side)
    for x in range(side // 5, side - side // 5):
        px[(side // 5) * side + x] = 255
    for k in range(side // 5, side - side // 6):
        x = side - side // 5 - 1 - (k - side // 5) // 2
        px[k * side + x] = 255
        px[k * side + max(0, x - 1)] = 200
    return px


def rows_of(values, w, ch=1):
    return [values[y * w * ch:(y + 1) * w * ch] for y in range(len(values) // (w * ch))]


def encode(fixture, fmt, w, h, c, pixels):
    with tempfile.TemporaryDirectory() as t:
        raw, out = os.path.join(t, "in.raw"), os.path.join(t, "out." + fmt)
        with open(raw, "wb") as f:
            f.write(bytes(pixels))
        subprocess.run([fixture, "encode", fmt, str(w), str(h), str(c), raw, out], check=True)
        with open(out, "rb") as f:
            return f.read()


def model(fixture, arch, seed):
    with tempfile.TemporaryDirectory() as t:
        out = os.path.join(t, "m.model")
        subprocess.run([fixture, "model", out, arch, str(seed)], check=True)
        with open(out, "rb") as f:
            return f.read()


def images(fixture):
    s = 16
    ink = digit(s)
    paper = [255 - v for v in ink]
    rgba = []
    for v in ink:  # blue ink on a transparent canvas
        rgba += [30, 60, 200, v] if v else [0, 0, 0, 0]
    rgb = [c for v in paper for c in (v, v, min(255, v + 40))]
    pal = bytes(c for i in range(4) for c in (i * 85,) * 3)
    return {
        "gray.png": png(s, s, rows_of(paper, s)),
        "light-on-dark.png": png(s, s, rows_of(ink, s)),
        "canvas-rgba.png": png(s, s, rows_of(rgba, s, 4), color_type=6),
        "gray-alpha.png": png(s, s, rows_of([c for v in ink for c in (0, v)], s, 2),
                              color_type=4),
        "rgb.png": png(s, s, rows_of(rgb, s, 3), color_type=2),
        "palette.png": png(s, s, rows_of([v // 86 for v in paper], s), color_type=3,
                           palette=pal),
        "sixteen-bit.png": png(s, s, rows_of([c for v in paper for c in (v, v)], s, 2),
                               bit_depth=16),
        "interlaced.png": png_interlaced(s, s, paper),
        "gray.gif": gif(s, s, paper),
        "gray.jpg": encode(fixture, "jpg", s, s, 1, paper),
        "colour.jpg": encode(fixture, "jpg", s, s, 3, rgb),
        "gray.bmp": encode(fixture, "bmp", s, s, 1, paper),
        "rgba.bmp": encode(fixture, "bmp", s, s, 4, rgba),
    }


def bmp8(w, h, palette_entries, indices, offset=None):
    """An uncompressed 8-bit BMP (40-byte info header) with the given
    number of palette entries (gray ramp) and row-major pixel indices
    (top row first; stored bottom-up). offset: the pixel data offset as
    written in the file header (default: right after the palette)."""
    stride = (w + 3) & ~3
    pixels = b"".join(bytes(indices[y * w:(y + 1) * w]) + b"\0" * (stride - w)
                      for y in reversed(range(h)))
    pal = b"".join(bytes((v, v, v, 0)) for v in
                   (255 * i // max(1, palette_entries - 1) for i in range(palette_entries)))
    off = 14 + 40 + len(pal) if offset is None else offset
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, len(pixels), 2835, 2835,
                       palette_entries, 0)
    head = b"BM" + struct.pack("<IHHI", 14 + 40 + len(pal) + len(pixels), 0, 0, off)
    return head + info + pal + pixels


def hostile_images(imgs):
    """Issue 10's hostile images (and a few of their kind)."""
    idx = [(x * 16 + y) % 256 for y in range(16) for x in range(16)]
    one_bit = png(4096, 4096, [[0] * 512] * 4096, bit_depth=1)
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    huge = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr +
            struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xffffffff) +
            png(1, 1, [[0]])[33:])
    gif_small_palette = bytearray(gif(16, 16, [(i * 7) % 256 for i in range(256)]))
    gif_small_palette[10] = 0x80  # global colour table of 2 entries, indices up to 255
    gif_small_palette = bytes(gif_small_palette[:13 + 6]) + bytes(gif_small_palette[13 + 768:])
    return {
        # a frame header and no scan: stb 2.27 "decoded" uninitialised heap
        "jpeg-frame-without-scan": bytes.fromhex("ffd8ffc0000b080010001001011100ffd9"),
        # a real JPEG cut in half: libjpeg fills the rest with grey and warns
        "jpeg-truncated-half": imgs["colour.jpg"][:len(imgs["colour.jpg"]) // 2],
        # one palette entry, indices up to 255: stb read its uninitialised
        # stack palette
        "bmp-palette-1-entry-indices-255": bmp8(16, 16, 1, idx),
        # a pixel offset inside the header: stb computed a negative palette
        # size, filled none of it and looked every index up
        "bmp-palette-negative-size": bmp8(16, 16, 1, idx, offset=50),
        # 16 Mpixel of 1-bit PNG in a few KB: refused from the header by the
        # fuzzers' limits, by the pixel budget in a batch
        "png-1bit-4096x4096-bomb": one_bit,
        "png-claims-100000x100000": huge,
        # GIF whose pixels index past its 2-entry global colour table
        "gif-indices-past-palette": gif_small_palette,
    }


def hostile_json(imgs):
    """Bodies the old fast path and cJSON read differently, and a flat
    array of more values than any batch may hold."""
    px = digit(28)
    bodies = {}
    for name, tok in (("plus", "+1"), ("leading-dot", ".5"), ("leading-zeros", "007"),
                      ("trailing-dot", "1."), ("lone-minus", "-"), ("hex", "0x1")):
        one = '{"pixels": [' + ",".join([str(v) for v in px[:400]] + [tok] +
                                        [str(v) for v in px[401:]]) + "]}"
        bodies["number-%s.json" % name] = one.encode()
        bodies["number-%s-in-batch.json" % name] = ("[" + one + "]").encode()
    bodies["flat-array-of-ones.json"] = ("[" + ",".join(["1"] * 30000) + "]").encode()
    bodies["batch-of-1bit-4096x4096-pngs.json"] = json.dumps(
        [{"image": base64.b64encode(hostile_images(imgs)["png-1bit-4096x4096-bomb"])
          .decode()}] * 3).encode()
    return bodies


def json_bodies(imgs):
    px = digit(28)
    b64 = base64.b64encode(imgs["gray.png"]).decode()
    one = {"pixels": px}
    return {
        "pixels.json": json.dumps(one).encode(),
        "pixels-compact.json": json.dumps(one, separators=(",", ":")).encode(),
        "pixels-unit.json": json.dumps({"pixels": [v / 255 for v in px]}).encode(),
        "pixels-rows.json": json.dumps({"pixels": rows_of(px, 28)}).encode(),
        "image-base64.json": json.dumps({"image": b64}).encode(),
        "image-data-url.json": json.dumps(
            {"image": "data:image/gif;base64," +
             base64.b64encode(imgs["gray.gif"]).decode()}).encode(),
        "image-urlsafe-wrapped.json": json.dumps(
            {"image": "\n".join(base64.urlsafe_b64encode(imgs["canvas-rgba.png"])
                                .decode()[i:i + 60] for i in range(0, 400, 60))}).encode(),
        "batch.json": json.dumps([one, {"image": b64}]).encode(),
        "instances.json": json.dumps({"instances": [{"image": b64}, one]}).encode(),
        "nan.json": ('{"pixels": [' + ",".join(["0"] * 400 + ["NaN"] + ["0"] * 383) +
                     "]}").encode(),
        "nested.json": b"[" * 17 + b"]" * 17,
        "strings.json": b'{"pixels": "0,0", "image": null, "x": "\\u00e9\\ud83d\\ude00"}',
        "trailing.json": json.dumps(one).encode() + b" xyz",
    }


def multipart_bodies(imgs):
    def body(boundary, fields, preamble=b""):
        out = preamble
        for name, filename, ctype, data in fields:
            disp = 'form-data; name="%s"' % name
            if filename:
                disp += '; filename="%s"' % filename
            head = "--%s\r\nContent-Disposition: %s\r\n" % (boundary, disp)
            if ctype:
                head += "Content-Type: %s\r\n" % ctype
            out += head.encode() + b"\r\n" + data + b"\r\n"
        return out + ("--%s--\r\n" % boundary).encode()
    b = "----digitdFuzz7MA4YWxkTrZu0gW"
    t = ("multipart/form-data; boundary=%s\n" % b).encode()
    return {
        "curl.txt": t + body(b, [("image", "d.png", "image/png", imgs["gray.png"])]),
        "two-fields.txt": t + body(b, [("note", None, None, b"hi"),
                                       ("image", "d.jpg", "image/jpeg", imgs["gray.jpg"])]),
        "quoted-boundary.txt": b'multipart/form-data; charset=utf-8; boundary="a b;c"\n' +
        body("a b;c", [("image", "d.gif", "image/gif", imgs["gray.gif"])]),
        "preamble.txt": t + body(b, [("image", "x.bmp", None, imgs["gray.bmp"])],
                                 preamble=b"ignored preamble\r\n"),
        "no-image-field.txt": t + body(b, [("file", "d.png", "image/png", imgs["gray.png"])]),
        "truncated.txt": (t + body(b, [("image", "d.png", "image/png", imgs["gray.png"])]))[:200],
        "no-boundary.txt": b"multipart/form-data\n--x\r\n\r\nabc\r\n--x--\r\n",
    }


def v2_bodies(imgs):
    """Open Inference Protocol requests as Triton's and KServe's clients
    send them; a leading '#' line is the Inference-Header-Content-Length
    value (fuzz_v2_infer.c)."""
    px = digit(28)
    unit = [v / 255 for v in px]

    def req(inp, **extra):
        return json.dumps(dict({"inputs": [inp]}, **extra)).encode()

    fp32 = {"name": "input", "shape": [1, 784], "datatype": "FP32", "data": unit}
    b64 = base64.b64encode(imgs["gray.png"]).decode()

    def binary(inp, blob, **extra):
        head = req(inp, **extra)
        return b"#%d\n" % len(head) + head + blob
    floats = struct.pack("<784f", *unit)
    png = imgs["gray.png"]
    return {
        "fp32.json": req(fp32),
        "fp32-255-rows.json": req({"name": "input", "shape": [1, 28, 28], "datatype": "FP32",
                                   "data": rows_of(px, 28)}),
        "fp32-nchw.json": req(dict(fp32, shape=[1, 1, 28, 28]), id="req-7",
                              outputs=[{"name": "digit"}, {"name": "probabilities"}]),
        "bytes-png.json": req({"name": "image", "shape": [1], "datatype": "BYTES",
                               "data": [b64]}, id="caf\u00e9"),
        "bytes-data-url.json": req({"name": "image", "shape": [1, 1], "datatype": "BYTES",
                                    "data": ["data:image/png;base64," + b64]}),
        "binary-fp32.bin": binary({"name": "input", "shape": [1, 784], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(floats)}}, floats,
                                  parameters={"binary_data_output": True}),
        "binary-bytes.bin": binary({"name": "image", "shape": [1], "datatype": "BYTES",
                                    "parameters": {"binary_data_size": 4 + len(png)}},
                                   struct.pack("<I", len(png)) + png,
                                   outputs=[{"name": "digit",
                                             "parameters": {"binary_data": True}}]),
        "header-not-a-number.bin": b"#-1\n" + req(fp32),
        "id-not-utf8.json": b'{"id":"a\xff\xc3","inputs":[{"name":"input","shape":[1,784],'
                            b'"datatype":"FP32","data":' + json.dumps(unit).encode() + b"}]}",
        "unknown-output-cut-utf8.json": req(fp32, outputs=[{"name": "a" + "\u00e9" * 40}]),
        "repo-index-ready.json": b'{"ready": true}',
        "datatype-int8.json": req(dict(fp32, datatype="INT8")),
    }


V2_PATHS = ["GET /v2", "GET /v2/health/live", "HEAD /v2/health/ready", "GET /v2/models/default",
            "GET /v2/models/default/versions/3", "GET /v2/models/cnn/versions/2/ready",
            "POST /v2/models/default/infer", "POST /v2/models/mlp/versions/1/infer",
            "PUT /v2/models/default/infer", "POST /v2/repository/index",
            "POST /v2/repository/models/mlp/load", "POST /v2/repository/models/mlp/unload",
            "GET /v2/models/\u00e9\udcff/infer", "GET /v2//models", "GET /v2/models/a/",
            "GET /v2/models/" + "x" * 70 + "/ready", "GET /v2x", "GET /predict"]


def idx_files():
    def idx(dims, items):
        return struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(
            struct.pack(">I", d) for d in dims) + items
    two = bytes(digit(28)) + bytes(255 - v for v in digit(28))
    images2 = idx((2, 28, 28), two)
    labels3 = idx((3,), bytes((7, 1, 0)))
    return {
        "images-2.idx": images2,
        "labels-3.idx": labels3,
        "images-0.idx": idx((0, 28, 28), b""),
        "labels-bad-digit.idx": idx((2,), bytes((7, 12))),
        "images-2.idx.gz": gzip.compress(images2, mtime=0),
        "labels-3.idx.gz": gzip.compress(labels3, mtime=0),
        "labels-two-members.gz": gzip.compress(labels3[:6], mtime=0) +
        gzip.compress(labels3[6:], mtime=0),
    }


def models(fixture):
    return {
        "mlp-784-4-10.model": model(fixture, "784-4-10", 1),
        "pool4-dense10.model": model(fixture, "pool4,dense10", 2),
        "conv.model": model(fixture, "conv3x2:valid,relu,pool4,dense10", 3),
        "tanh-dropout.model": model(fixture, "pool4,dense4,tanh,dropout0.25,dense10", 4),
    }


STATIC_PATHS = ["/", "/index.html", "/app.js", "/style.css", "/sub/", "/sub/icon.svg",
                "/sub/index.html", "/inside.html", "/../secret.txt", "/sub/../../secret.txt",
                "/link-out.txt", "/sub/up.txt", "/linkdir/secret.txt", "/sibling.html",
                "/passwd", "/.hidden", "/fifo", "/emptydir/", "/emptydir", "//etc/passwd",
                "/sub/./icon.svg", "/..\\secret.txt", "index.html", "/index.html%00.png",
                "/nope/"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixture", required=True, help="path of the http_fixture binary")
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    ap.add_argument("--hostile", action="store_true",
                    help="also write issue 10's hostile inputs into tests/fuzz/regressions/")
    args = ap.parse_args()
    imgs = images(args.fixture)
    if args.hostile:
        hostile = {"fuzz_image": hostile_images(imgs),
                   "fuzz_predict_image": hostile_images(imgs),
                   "fuzz_predict_json": hostile_json(imgs)}
        for harness, files in hostile.items():
            d = os.path.join(HERE, "regressions", harness)
            os.makedirs(d, exist_ok=True)
            for name, data in files.items():
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
            print("%-24s %3d hostile inputs, %6d bytes" %
                  (harness, len(files), sum(len(v) for v in files.values())))
    sets = {
        "fuzz_image": imgs,
        "fuzz_predict_image": imgs,
        "fuzz_predict_json": json_bodies(imgs),
        "fuzz_predict_multipart": multipart_bodies(imgs),
        "fuzz_idx": idx_files(),
        "fuzz_model": models(args.fixture),
        "fuzz_static": {"path-%02d.txt" % i: p.encode() for i, p in enumerate(STATIC_PATHS)},
        "fuzz_v2_infer": v2_bodies(imgs),
        "fuzz_v2_route": {"route-%02d.txt" % i: p.encode("utf-8", "surrogateescape")
                          for i, p in enumerate(V2_PATHS)},
    }
    total = 0
    for harness, files in sets.items():
        d = os.path.join(args.out, harness)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print("%-24s %3d seeds, %6d bytes" % (harness, len(files),
                                               sum(len(v) for v in files.values())))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
