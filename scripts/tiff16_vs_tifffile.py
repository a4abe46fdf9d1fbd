"""tiff16 vs tifffile: time, tracemalloc peak, hostile cases (issue 18 item 8; the decision is in
edge_runtime/tiff16.py). Run: PYTHONPATH=. .venv/bin/python scripts/tiff16_vs_tifffile.py (needs tifffile)."""
import io, sys, tempfile, time, tracemalloc, zlib, struct, warnings, logging
import numpy as np, tifffile
from edge_runtime import imageio, tiff16
logging.disable(logging.CRITICAL)
rng = np.random.default_rng(0)
h, w = 3000, 4000  # 12 MP
img = (rng.integers(0, 4096, (h, w, 3), dtype=np.uint16) + np.arange(w, dtype=np.uint16)[None, :, None] * 8)
path = tempfile.gettempdir() + "/rgb16_12mp.tif"
open(path, "wb").write(tiff16.encode(img))
print("file MiB", round(len(open(path,'rb').read()) / 2**20, 1), "decoded MiB", img.nbytes / 2**20)
def measure(name, fn):
    tracemalloc.start(); t = time.perf_counter(); out = fn(); dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    ok = np.array_equal(out, img)
    print(f"{name:10s} {dt:6.2f}s  peak {peak / 2**20:6.0f} MiB  equal {ok}")
    del out
measure("tiff16", lambda: imageio.read_image(path).color)
measure("tifffile", lambda: tifffile.imread(path))
try:
    import imagecodecs; print("imagecodecs", imagecodecs.__version__)
except ImportError:
    print("imagecodecs: not installed (tifffile falls back to zlib / numpy)")

def run_both(label, data):
    p = f"{tempfile.gettempdir()}/hostile_{label}.tif"; open(p, "wb").write(data)
    for name, fn in (("tiff16", lambda: imageio.read_image(p).color), ("tifffile", lambda: tifffile.imread(p))):
        tracemalloc.start()
        try:
            with warnings.catch_warnings(record=True) as wl:
                warnings.simplefilter("always")
                out = fn()
            res = f"returned {out.shape} (nonzero {np.count_nonzero(out)}) warnings={len(wl)}"
        except Exception as e:
            res = f"raised {type(e).__name__}: {str(e)[:90]}"
        peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
        print(f"  {label:12s} {name:9s} peak {peak/2**20:7.1f} MiB  {res}")
small = rng.integers(0, 65535, (64, 64, 3), dtype=np.uint16)
good = tiff16.encode(small, rows_per_strip=8)
print("hostile:")
run_both("truncated", good[: len(good) * 2 // 3])
# corrupt deflate in a strip: flip bytes in the middle of the strip data
bad = bytearray(good); mid = len(bad) * 2 // 3
bad[mid:mid+16] = b"\xff" * 16
run_both("corrupt", bytes(bad))
# zlib bomb: 1 x 64 image whose single strip inflates to 1 GiB of zeros
bomb_pixels = np.zeros((1, 64, 3), np.uint16)
enc = bytearray(tiff16.encode(bomb_pixels, rows_per_strip=1))
co = zlib.compressobj(9); blob = b"".join(co.compress(b"\0" * 2**24) for _ in range(64)) + co.flush()
strip = zlib.compress(b"\0" * (64 * 6), 6)
i = enc.index(strip)
newdata = bytes(enc[:i]) + blob
# patch strip byte count (LONG) value
cnt_pos = bytes(enc).index(struct.pack("<HHII", 279, 4, 1, len(strip)))
newdata = bytearray(newdata); struct.pack_into("<I", newdata, cnt_pos + 8, len(blob))
run_both("zlib-bomb", bytes(newdata))
print("bomb file KiB", len(newdata) // 1024)
b = io.BytesIO(); tifffile.imwrite(b, small, photometric="rgb"); raw = b.getvalue()
run_both("cut-raw", raw[: len(raw) - 4000])
