"""Classic (non-learned) restoration baselines, for honest comparison with the learned models.

Every function takes and returns a float32 HxWxC image in the contract's [0, 1] range (C is 1 or
3) and does not clip its output: the evaluator clips and rounds to 8 bits before scoring, exactly
as it does for the learned models.

Each method is given its *fairest* setting: the true noise standard deviation and, for
deconvolution, the true blur kernel. A learned model gets neither, so these baselines are an upper
bound on what the classic methods would achieve on a board, where sigma and the kernel would have
to be estimated. Noise levels (`sigma`) are on the familiar 0-255 scale, as in
:mod:`train.degradations`.

The deconvolution methods (Wiener, Richardson-Lucy, edge tapering) and OpenCV's non-local means
live in :mod:`edge_runtime.classic` (numpy only, OpenCV imported lazily), the one implementation
that the board runtime also runs; this module re-exports them with their constants. The
scikit-image methods (non-local means, wavelet shrinkage) are desktop baselines only and import
scikit-image lazily inside their functions.

Kernel alignment follows :func:`train.degradations.blur`: a kernel of size kh x kw is centred on
pixel ((kh - 1) // 2, (kw - 1) // 2), and the image was extended by reflection before blurring.
"""

from __future__ import annotations

import numpy as np

from edge_runtime.classic import (
    NLM_OPENCV_H_FACTOR,
    NLM_OPENCV_LAB_H_FACTOR,
    RL_ITERATIONS,
    WIENER_PRIOR_GRADIENT_ENERGY,
    _check_image,
    edge_taper_pad,
    estimate_noise_sigma,
    nlm_opencv,
    richardson_lucy,
    wiener_deconvolve,
)
from edge_runtime.contract import PIXEL_MAX

__all__ = [
    "WIENER_PRIOR_GRADIENT_ENERGY",
    "RL_ITERATIONS",
    "NLM_OPENCV_H_FACTOR",
    "NLM_OPENCV_LAB_H_FACTOR",
    "NLM_SKIMAGE_H_FACTOR",
    "WAVELET",
    "wiener_deconvolve",
    "richardson_lucy",
    "nlm_opencv",
    "nlm_skimage",
    "estimate_noise_sigma",
    "wavelet_denoise",
    "edge_taper_pad",
]

#: scikit-image NLM filter strength h = factor * sigma, see :func:`nlm_skimage`.
NLM_SKIMAGE_H_FACTOR = 0.5
#: Wavelet used by :func:`wavelet_denoise`.
WAVELET = "db2"


# --------------------------------------------------------------------------------------------
# Denoising with scikit-image (known sigma); the deconvolution and OpenCV NLM are re-exported above
# --------------------------------------------------------------------------------------------


def nlm_skimage(img: np.ndarray, sigma: float, h_factor: float = NLM_SKIMAGE_H_FACTOR) -> np.ndarray:
    """scikit-image non-local means (`denoise_nl_means`, fast_mode, 5x5 patches, 13x13 search).

    `sigma` (0-255 scale) is the *true* noise std; it is passed to skimage (which then subtracts
    the expected noise from patch distances) and sets the filter strength h = `h_factor` * sigma.
    The default 0.5 (:data:`NLM_SKIMAGE_H_FACTOR`) had the best mean PSNR over sigma 15, 25 and 50
    in a sweep of 0.3-1.2 on 256x256 crops of skimage's astronaut, coffee and chelsea (at sigma 25:
    0.4: 29.5, 0.5: 29.6, 0.6: 29.5, 0.8: 28.9 dB; the best factor falls as sigma grows: 0.6 at 15,
    0.3 at 50). skimage's gallery suggests 0.8 for the slow mode and 0.6 for the fast mode. Works
    in float, no 8-bit round trip.

    Fairest setting: the true sigma.
    """
    from skimage.restoration import denoise_nl_means  # lazy: not needed on a board

    arr = _check_image(img)
    s = float(sigma) / PIXEL_MAX
    out = denoise_nl_means(
        arr.astype(np.float64),
        h=float(h_factor) * s,
        sigma=s,
        fast_mode=True,
        patch_size=5,
        patch_distance=6,
        channel_axis=-1,
    )
    return np.asarray(out, dtype=np.float32).reshape(arr.shape)


def wavelet_denoise(img: np.ndarray, sigma: float, wavelet: str = WAVELET) -> np.ndarray:
    """Wavelet shrinkage (`skimage.restoration.denoise_wavelet`): BayesShrink, soft thresholds.

    Colour images are denoised in YCbCr (`convert2ycbcr=True`), the usual choice, with the
    Daubechies-2 wavelet (:data:`WAVELET`): in a sweep on 256x256 crops of skimage's astronaut,
    coffee and chelsea it beat db1 (skimage's default), sym4 and sym8 at sigma 15, 25 and 50 (at 25:
    db2 28.1, sym4 27.8, db1 27.5, sym8 25.5 dB). `sigma` is the
    *true* noise std on the 0-255 scale, given to skimage rather than estimated from the image
    (`rescale_sigma=True` carries it through the colour conversion). Needs PyWavelets.

    Fairest setting: the true sigma.
    """
    from skimage.restoration import denoise_wavelet  # lazy: pulls in PyWavelets

    arr = _check_image(img)
    s = float(sigma) / PIXEL_MAX
    if arr.shape[2] == 3:
        out = denoise_wavelet(
            arr.astype(np.float64),
            sigma=s,
            wavelet=wavelet,
            mode="soft",
            method="BayesShrink",
            convert2ycbcr=True,
            channel_axis=-1,
            rescale_sigma=True,
        )
    else:
        out = np.stack(
            [
                denoise_wavelet(arr[..., c].astype(np.float64), sigma=s, wavelet=wavelet, mode="soft",
                                method="BayesShrink", rescale_sigma=True)
                for c in range(arr.shape[2])
            ],
            axis=-1,
        )
    return np.asarray(out, dtype=np.float32)
