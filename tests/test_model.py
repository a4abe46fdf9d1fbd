"""The restorer: shapes, presets, summary, and the quantization points' TFLite semantics."""

import numpy as np
import pytest
import torch

from train.cli import main as train_main
from train.model import PRESETS, HardSigmoid, RestorerConfig, build_restorer, count_parameters, macs_per_pixel
from train.quant import QConv2d, freeze_ranges, set_quant_mode


@pytest.mark.parametrize("name", ["tiny", "minimalistic"])
def test_any_multiple_of_the_size_multiple_keeps_its_shape(name):
    model = build_restorer(name).eval()
    m = model.cfg.size_multiple
    for h, w in ((m, m), (3 * m, 5 * m)):
        x = torch.rand(1, 3, h, w)
        assert model(x).shape == x.shape


def test_untrained_model_starts_close_to_identity():
    torch.manual_seed(0)
    model = build_restorer("tiny").eval()
    x = torch.rand(1, 3, 32, 32)
    residual = (model(x) - x).abs().mean()
    assert residual < 0.1  # the head starts at a tenth of its default scale
    with torch.no_grad():
        model.head.conv.weight.mul_(10)
    assert (model(x) - x).abs().mean() > 2 * residual


def test_presets_have_distinct_sizes_and_positive_macs():
    params = {n: count_parameters(build_restorer(n)) for n in PRESETS}
    assert params["tiny"] < params["small"] < params["base"]
    assert 200_000 < params["small"] < 400_000
    assert macs_per_pixel(build_restorer("tiny")) > 1000


@pytest.mark.parametrize("name, like", [("minimalistic", "small"), ("fast-minimalistic", "fast")])
def test_minimalistic_presets_use_only_relu_and_no_se(name, like):
    cfg = PRESETS[name]
    assert cfg.activation == "relu" and not cfg.use_se
    assert (cfg.widths, cfg.blocks, cfg.expansion) == (PRESETS[like].widths, PRESETS[like].blocks, PRESETS[like].expansion)
    model = build_restorer(cfg)
    assert not any(isinstance(m, (torch.nn.Hardswish, HardSigmoid)) for m in model.modules())
    assert any(isinstance(m, HardSigmoid) for m in build_restorer(like).modules())  # the check can fail


def test_fast_preset_has_no_full_resolution_blocks_and_a_fourth_level():
    cfg = PRESETS["fast"]
    assert cfg.blocks[0] == 0 and cfg.depth == 3 and cfg.size_multiple == 8
    model = build_restorer(cfg)
    assert len(model.encoders[0]) == len(model.decoders[0]) == 0
    assert macs_per_pixel(model) < macs_per_pixel(build_restorer("small"))
    x = torch.rand(1, 3, 32, 40)
    assert model(x).shape == x.shape


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        RestorerConfig(widths=(8, 16), blocks=(1,))
    with pytest.raises(ValueError):
        RestorerConfig(activation="gelu")


def test_summary_cli_lists_every_preset(capsys):
    assert train_main(["--summary"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert name in out


def test_fake_quant_output_is_on_the_8bit_pixel_grid_and_weights_on_int8_grids():
    torch.manual_seed(0)
    model = build_restorer(RestorerConfig(widths=(8, 16), blocks=(1, 1), expansion=2, use_se=True)).eval()
    x = torch.rand(2, 3, 16, 16)
    set_quant_mode(model, "observe")
    model(x)
    freeze_ranges(model)
    set_quant_mode(model, "quant")
    y = model(x)
    assert torch.allclose(y * 255, torch.round(y * 255), atol=1e-4)  # output grid: scale 1/255
    assert y.min() >= 0 and y.max() <= 1
    conv = next(m for m in model.modules() if isinstance(m, QConv2d))
    w = conv.weight.detach()
    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    from train.quant import weight_scale
    fq = torch.fake_quantize_per_channel_affine(w, weight_scale(w), torch.zeros(w.shape[0], dtype=torch.int32), 0, -128, 127)
    levels = (fq / scale).round()
    assert levels.abs().max() <= 127 and np.allclose((fq / scale).numpy(), levels.numpy(), atol=1e-3)


def test_residual_is_pinned_to_the_pixel_lattice_even_from_a_float_checkpoint():
    from train.quant import RESIDUAL_QPARAMS

    torch.manual_seed(0)
    cfg = RestorerConfig(widths=(8, 16), blocks=(1, 1), expansion=2)
    float_state = build_restorer(cfg).state_dict()
    float_state["head.q_conv.scale"].fill_(1.0)  # what an unobserved float checkpoint carries
    model = build_restorer(cfg).eval()
    model.load_state_dict(float_state)
    x = torch.rand(2, 3, 16, 16)
    set_quant_mode(model, "observe")
    with torch.no_grad():
        model.head.conv.weight.mul_(50.0)  # a residual far beyond +-0.5: an observed range would follow it
        model(x)
    freeze_ranges(model)
    q = model.head.q_conv
    assert (float(q.scale), int(q.zero_point)) == (pytest.approx(RESIDUAL_QPARAMS[0]), RESIDUAL_QPARAMS[1])
    set_quant_mode(model, "quant")
    with torch.no_grad():
        r = model.head(model.decoders[0](model.stem(model.q_in(x))))
    steps = r * 255 / 2  # residual steps of 2/255: every value is a whole step, inside [-128, 127]
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    assert steps.min() > -128.01 and steps.max() < 127.01 and steps.abs().max() > 100  # saturated, not rescaled


def test_percentile_observer_ignores_rare_outliers():
    import torch
    from train.quant import ActQuant, set_observer_percentile

    x = torch.linspace(-1.0, 1.0, 100_001)
    x[0], x[-1] = -50.0, 50.0  # two outliers among 100k values
    full, central = ActQuant(), ActQuant()
    set_observer_percentile(central, 0.9999)
    for q in (full, central):
        q.mode = "observe"
        q(x)
        q.freeze()
    assert float(full.lo) == -50.0 and float(full.hi) == 50.0
    assert -1.0 <= float(central.lo) < -0.99 and 0.99 < float(central.hi) <= 1.0
    assert float(central.scale) < float(full.scale) / 40
    with pytest.raises(ValueError, match="percentile"):
        set_observer_percentile(central, 0.3)
