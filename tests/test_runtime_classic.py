"""edge_runtime.classic: the numpy-only Wiener / Richardson-Lucy equal the former SciPy ones, restore
real photos, and restore_classic / load_kernel behave like the rest of the runtime."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from edge_runtime import classic
from edge_runtime.errors import EXIT_BAD_IMAGE, DependencyError, KernelError, MissingInputError, UsageError
from edge_runtime.metrics import psnr
from train.degradations import add_gaussian_noise, blur, gaussian_kernel, motion_kernel, quantize_8bit

skdata = pytest.importorskip("skimage.data")
sfft = pytest.importorskip("scipy.fft")
fftconvolve = pytest.importorskip("scipy.signal").fftconvolve

# --------------------------------------------------------------------------------------------
# SciPy reference: the implementation train/classic.py had before the move (commit 90253c3),
# copied here verbatim in substance so the numpy port is checked against an independent copy.
# --------------------------------------------------------------------------------------------


def _ref_kernel(kernel: np.ndarray) -> np.ndarray:
    k = np.clip(np.asarray(kernel, dtype=np.float64), 0.0, None)
    k = k / k.sum()
    kh, kw = k.shape
    return np.pad(k, ((1 - kh % 2, 0), (1 - kw % 2, 0)))


def _ref_otf(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    k = _ref_kernel(kernel)
    kh, kw = k.shape
    z = np.zeros(shape)
    z[:kh, :kw] = k
    return sfft.fft2(np.roll(z, (-(kh // 2), -(kw // 2)), axis=(0, 1)))


def _ref_taper(img: np.ndarray, kernel: np.ndarray, m: int) -> np.ndarray:
    padded = np.pad(img.astype(np.float64), ((m, m), (m, m), (0, 0)), mode="reflect")
    h, w = padded.shape[:2]
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)

    def window(n: int) -> np.ndarray:
        t = np.ones(n)
        t[:m], t[n - m :] = ramp, ramp[::-1]
        return t

    weight = (window(h)[:, None] * window(w)[None, :])[..., None]
    blurred = np.real(sfft.ifft2(sfft.fft2(padded, axes=(0, 1)) * _ref_otf(kernel, (h, w))[..., None], axes=(0, 1)))
    return weight * padded + (1.0 - weight) * blurred


def _ref_wiener(img: np.ndarray, kernel: np.ndarray, nsr: float | None = None, sigma: float | None = None) -> np.ndarray:
    k = _ref_kernel(kernel)
    h, w = img.shape[:2]
    m = max(k.shape)
    padded = _ref_taper(img, k, m)
    ph, pw = padded.shape[:2]
    H = _ref_otf(k, (ph, pw))
    if nsr is not None:
        reg = np.full((ph, pw), float(nsr))
    else:
        s = max(float(sigma), 0.5) / 255.0
        wy, wx = 2 * np.pi * sfft.fftfreq(ph), 2 * np.pi * sfft.fftfreq(pw)
        reg = (s * s / 0.005) * (4 * np.sin(wy[:, None] / 2) ** 2 + 4 * np.sin(wx[None, :] / 2) ** 2)
    G = np.conj(H) / (np.abs(H) ** 2 + reg)
    out = np.real(sfft.ifft2(sfft.fft2(padded, axes=(0, 1)) * G[..., None], axes=(0, 1)))
    return out[m : m + h, m : m + w].astype(np.float32)


def _ref_rl(img: np.ndarray, kernel: np.ndarray, iterations: int = 15) -> np.ndarray:
    k = _ref_kernel(kernel)[:, :, None]
    h, w = img.shape[:2]
    m = max(k.shape[:2])
    y = np.pad(np.clip(img.astype(np.float64), 1e-6, None), ((m, m), (m, m), (0, 0)), mode="reflect")
    x = y.copy()
    for _ in range(iterations):
        ratio = y / np.maximum(fftconvolve(x, k, mode="same", axes=(0, 1)), 1e-6)
        x = np.maximum(x * fftconvolve(ratio, k[::-1, ::-1], mode="same", axes=(0, 1)), 0.0)
    return x[m : m + h, m : m + w].astype(np.float32)


# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A textured 72x80 crop of skimage's astronaut, float32 in [0, 1] (not square, to catch swapped axes)."""
    return skdata.astronaut()[120:192, 150:230].astype(np.float32) / 255.0


KERNELS = {
    "motion25": motion_kernel(np.random.default_rng(1), 25),
    "gauss2": gaussian_kernel(2.0),
    "box4x6": np.ones((4, 6)) / 24,  # even sides: the zero-row/column centring path
}


def _blurred(clean: np.ndarray, kernel: np.ndarray, seed: int = 0) -> np.ndarray:
    """Blur, add 1% Gaussian noise (sigma 2.55 of 255) and round to 8 bits, as the evaluator does."""
    return quantize_8bit(add_gaussian_noise(blur(clean, kernel), 2.55, np.random.default_rng(seed)))


# The numpy port and SciPy run the same float64 arithmetic through the same FFT library
# (pocketfft); they differ by ~1e-16 before the final float32 cast (the taper: 4.4e-16), so the
# float32 outputs can differ by at most one float32 rounding step (<= 1.2e-7 for |x| < 2); on the
# cases below they are bit-identical. 1e-6 leaves 8x headroom over one step and is 10x tighter
# than a 1e-5 bound; the float64 taper is compared at 1e-12.
TOL = 1e-6


@pytest.mark.parametrize("name", list(KERNELS))
@pytest.mark.parametrize("gray", [False, True])
def test_numpy_deconvolution_equals_scipy_reference(photo, name, gray):
    k = KERNELS[name]
    img = photo.mean(axis=2, keepdims=True) if gray else photo
    degraded = _blurred(img, k)
    cases = {
        "wiener-sigma": (classic.wiener_deconvolve(degraded, k, sigma=2.57), _ref_wiener(degraded, k, sigma=2.57)),
        "wiener-floor": (classic.wiener_deconvolve(degraded, k, sigma=0.0), _ref_wiener(degraded, k, sigma=0.0)),
        "wiener-nsr": (classic.wiener_deconvolve(degraded, k, nsr=1e-3), _ref_wiener(degraded, k, nsr=1e-3)),
        "rl-15": (classic.richardson_lucy(degraded, k), _ref_rl(degraded, k)),
        "rl-40": (classic.richardson_lucy(degraded, k, iterations=40), _ref_rl(degraded, k, 40)),
    }
    for case, (ours, ref) in cases.items():
        assert ours.shape == ref.shape == img.shape and ours.dtype == np.float32
        diff = float(np.abs(ours.astype(np.float64) - ref).max())
        assert diff < TOL, (case, diff)
    taper = classic.edge_taper_pad(degraded, k, 25)
    assert float(np.abs(taper - _ref_taper(degraded, k, 25)).max()) < 1e-12


def test_fast_len_is_5_smooth_and_minimal():
    assert [classic._fast_len(n) for n in (1, 7, 11, 97, 121, 1001)] == [1, 8, 12, 100, 125, 1024]


@pytest.mark.parametrize("method", ["wiener", "rl"])
def test_restore_classic_deblurs_a_photo(tmp_path, method):
    """uint8 photo, blurred with a known motion kernel + 1% noise: the output beats the input PSNR."""
    clean = skdata.coffee()[60:188, 200:328]  # 128x128 uint8
    k = KERNELS["motion25"]
    np.save(tmp_path / "k.npy", k)
    degraded = (_blurred(clean.astype(np.float32) / 255.0, k, seed=3) * 255 + 0.5).astype(np.uint8)
    out = classic.restore_classic(degraded, method, kernel=tmp_path / "k.npy", sigma=2.57)
    assert out.shape == degraded.shape and out.dtype == np.uint8
    before, after = psnr(degraded, clean, 255), psnr(out, clean, 255)
    # Measured: blurred 27.6 dB; Wiener 32.0, RL 31.3.
    assert after > before + 2.0, (method, before, after)


def test_wiener_estimates_sigma_when_not_given(photo, caplog):
    k = KERNELS["gauss2"]
    degraded = _blurred(photo, k, seed=5)
    with caplog.at_level(logging.INFO, logger="edge_runtime"):
        out = classic.restore_classic(degraded, "wiener", kernel=k)
    assert "estimated noise sigma" in caplog.text
    est = classic.estimate_noise_sigma(degraded)
    assert 1.5 < est < 4.0  # true: hypot(2.55, 8-bit rounding 0.29) = 2.57
    assert psnr(out, photo) > psnr(degraded, photo) + 1.0


@pytest.mark.parametrize("sigma", [10.0, 25.0])
def test_estimate_noise_sigma(sigma):
    flat = np.full((96, 96, 3), 0.5, np.float32)
    noisy_flat = add_gaussian_noise(flat, sigma, np.random.default_rng(0))
    assert abs(classic.estimate_noise_sigma(noisy_flat) - sigma) < 0.05 * sigma
    clean = skdata.astronaut().astype(np.float32) / 255.0
    noisy = quantize_8bit(add_gaussian_noise(clean, sigma, np.random.default_rng(1)))
    # Measured 9.6 at 10 and 22.2 at 25 (texture pushes up, clipping at 0/255 pulls down).
    assert abs(classic.estimate_noise_sigma(noisy) - sigma) < 0.15 * sigma


def test_restore_classic_dtypes_gray_and_alpha(photo):
    k = KERNELS["gauss2"]
    f = _blurred(photo, k)
    u8 = (f * 255 + 0.5).astype(np.uint8)
    ref = classic.restore_classic(u8, "wiener", kernel=k, sigma=2.57)

    u16 = classic.restore_classic(u8.astype(np.uint16) * 257, "wiener", kernel=k, sigma=2.57)
    assert u16.dtype == np.uint16 and u16.shape == u8.shape
    assert np.abs(u16 / 257.0 - ref).max() <= 1.0  # the same image on a 16-bit grid

    f32 = classic.restore_classic(u8.astype(np.float32) / 255, "wiener", kernel=k, sigma=2.57)
    assert f32.dtype == np.float32 and 0.0 <= f32.min() and f32.max() <= 1.0
    assert np.abs(f32 * 255 - ref).max() <= 0.5 + 1e-3
    f64 = classic.restore_classic(u8.astype(np.float64) / 255 + 0.5, "rl", kernel=k)  # out of range: clipped
    assert f64.dtype == np.float64

    alpha = (np.arange(u8[..., :1].size) % 256).astype(np.uint8).reshape(u8.shape[:2] + (1,))
    rgba = np.concatenate([u8, alpha], axis=2)
    out = classic.restore_classic(rgba, "wiener", kernel=k, sigma=2.57)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])
    assert np.array_equal(out[..., :3], ref)

    gray = u8[..., 1]
    g = classic.restore_classic(gray, "rl", kernel=k)
    assert g.shape == gray.shape and g.dtype == np.uint8
    assert np.array_equal(g, classic.restore_classic(gray[..., None], "rl", kernel=k)[..., 0])
    la = np.stack([gray, gray], axis=2)
    out_la = classic.restore_classic(la, "rl", kernel=k)
    assert np.array_equal(out_la[..., 0], g) and np.array_equal(out_la[..., 1], gray)


def test_restore_classic_usage_errors(photo):
    u8 = (photo * 255).astype(np.uint8)
    with pytest.raises(UsageError, match="unknown classic method 'tv'"):
        classic.restore_classic(u8, "tv")
    with pytest.raises(UsageError, match="wiener needs the blur kernel"):
        classic.restore_classic(u8, "wiener", sigma=1.0)
    with pytest.raises(UsageError, match="sigma"):
        classic.restore_classic(u8, "wiener", kernel=gaussian_kernel(1.0), sigma=-1.0)
    with pytest.raises(TypeError, match="dtype int32"):
        classic.restore_classic(u8.astype(np.int32), "rl", kernel=gaussian_kernel(1.0))
    with pytest.raises(KernelError, match="negative"):
        classic.restore_classic(u8, "rl", kernel=np.array([[1.0, -0.5], [0.2, 0.3]]))


def test_load_kernel_reads_npy_and_png(tmp_path):
    k = KERNELS["motion25"]
    np.save(tmp_path / "k.npy", k * 7)  # any scale: normalised to sum 1
    np.testing.assert_allclose(classic.load_kernel(tmp_path / "k.npy"), k / k.sum(), atol=1e-12)
    np.save(tmp_path / "line.npy", np.ones((1, 9, 1)))  # HxWx1: the channel axis is dropped
    assert classic.load_kernel(tmp_path / "line.npy").shape == (1, 9)

    u8 = np.round(k / k.max() * 255).astype(np.uint8)
    Image.fromarray(u8).save(tmp_path / "k8.png")
    np.testing.assert_allclose(classic.load_kernel(str(tmp_path / "k8.png")), u8 / u8.sum(), atol=1e-12)
    u16 = np.round(k / k.max() * 65535).astype(np.uint16)
    Image.fromarray(u16).save(tmp_path / "k16.png")
    k16 = classic.load_kernel(tmp_path / "k16.png")
    np.testing.assert_allclose(k16, u16 / u16.sum(), atol=1e-12)
    assert k16.dtype == np.float64 and abs(k16.sum() - 1) < 1e-12


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("flat.npy", np.ones(9), "2-D array, got shape \\(9,\\).*\\(1, N\\)"),
        ("cube.npy", np.ones((3, 3, 3)), "2-D array, got shape \\(3, 3, 3\\)"),
        ("neg.npy", np.array([[0.5, -0.1], [0.3, 0.3]]), "negative values"),
        ("zero.npy", np.zeros((5, 5)), "sums to zero"),
        ("nan.npy", np.array([[np.nan, 1.0]]), "NaN or infinite"),
        ("text.npy", np.array([["a", "b"]]), "unreadable"),
        ("obj.npy", np.array([{"a": 1}], dtype=object), "unreadable"),  # would need unpickling
        ("junk.npy", b"not an npy file", "unreadable"),
        ("junk.png", b"\x89PNG\r\n\x1a\n garbage", "unreadable"),
        ("black.png", Image.new("L", (5, 5)), "sums to zero"),
        ("kernel.txt", b"1 2 3", "must be a .npy or .png"),
    ],
)
def test_load_kernel_errors(tmp_path, name, content, message):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    elif isinstance(content, Image.Image):
        content.save(p)
    else:
        np.save(p, content, allow_pickle=True)
    with pytest.raises(KernelError, match=message) as info:
        classic.load_kernel(p)
    assert "\n" not in str(info.value) and str(p) in str(info.value)
    assert info.value.exit_code == EXIT_BAD_IMAGE and isinstance(info.value, ValueError)


def test_load_kernel_missing_file(tmp_path):
    with pytest.raises(MissingInputError, match="kernel file not found"):
        classic.load_kernel(tmp_path / "nope.npy")


@pytest.mark.parametrize("method", ["nlm", "nlm-lab"])
def test_restore_classic_nlm_denoises(method):
    pytest.importorskip("cv2")
    clean = skdata.chelsea()[60:124, 180:244]
    noisy = (quantize_8bit(add_gaussian_noise(clean.astype(np.float32) / 255, 25.0, np.random.default_rng(2))) * 255
             + 0.5).astype(np.uint8)
    out = classic.restore_classic(noisy, method, sigma=25.0)
    assert out.shape == noisy.shape and out.dtype == np.uint8
    assert psnr(out, clean, 255) > psnr(noisy, clean, 255) + 2.0
    # Same pixels as the evaluator's baseline (train.classic re-exports this very function).
    expected = classic.nlm_opencv(noisy.astype(np.float32) / 255, 25.0, colorspace="rgb" if method == "nlm" else "lab")
    assert np.array_equal(out, np.rint(expected * 255).astype(np.uint8))


def test_nlm_without_opencv_names_the_package(monkeypatch, photo):
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # makes `import cv2` raise ImportError
    with pytest.raises(DependencyError, match="pip install opencv-python-headless") as info:
        classic.restore_classic((photo * 255).astype(np.uint8), "nlm", sigma=10.0)
    assert "\n" not in str(info.value) and info.value.exit_code == 78
    with pytest.raises(DependencyError, match="opencv-python-headless"):
        classic.import_opencv()  # what a CLI calls once before a batch


def test_train_classic_reexports_the_runtime_functions():
    from train import classic as train_classic

    for name in ("wiener_deconvolve", "richardson_lucy", "edge_taper_pad", "nlm_opencv",
                 "WIENER_PRIOR_GRADIENT_ENERGY", "RL_ITERATIONS", "NLM_OPENCV_H_FACTOR", "NLM_OPENCV_LAB_H_FACTOR"):
        assert getattr(train_classic, name) is getattr(classic, name), name
