"""book/one-by-one-and-cost.md: a 1x1 convolution is a dense layer at every pixel, and the
parameters, multiply-adds and activations of the book's networks, recounted here from their
layer lists with plain arithmetic (no Keras)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PAGE = "one-by-one-and-cost"
BOOK = Path(__file__).resolve().parent.parent / "book"


def count(layers, size=28, channels=1):
    """[(kind, parameters, multiply-adds, activations)] per layer of a 28x28x1 input.

    Layers: ("conv", filters, k, padding, bias), ("pool", padding), ("bn",), ("same",) for a
    layer that keeps its input's shape and has no weights, ("flatten",), ("dense", units, bias).
    """
    rows, units = [], None
    for kind, *args in layers:
        params = macs = 0
        if kind == "conv":
            filters, k, padding, bias = args
            size = size if padding == "same" else size - k + 1
            params = k * k * channels * filters + filters * bias
            macs = size * size * k * k * channels * filters
            channels = filters
        elif kind == "pool":
            size = math.ceil(size / 2) if args[0] == "same" else size // 2
        elif kind == "bn":
            params = 4 * (units or channels)  # gamma, beta, moving mean, moving variance
        elif kind == "flatten":
            units = size * size * channels
        elif kind == "dense":
            out, bias = args
            params, macs, units = units * out + out * bias, units * out, out
        outputs = units if units is not None else size * size * channels
        rows.append((kind, params, macs, outputs))
    return rows


PORT = [
    ("conv", 32, 3, "same", 1),
    ("pool", "same"),
    ("conv", 64, 3, "same", 1),
    ("pool", "same"),
    ("flatten",),
    ("dense", 256, 1),
    ("same",),
    ("dense", 256, 1),
    ("same",),
    ("dense", 10, 1),
]
MNIST_IMPROVED = (
    [("same",)]  # RandomTranslation
    + [("conv", 16, 3, "same", 0), ("bn",), ("same",), ("pool", "valid")]
    + [("conv", 32, 3, "same", 0), ("bn",), ("same",), ("pool", "valid")]
    + [("conv", 64, 3, "same", 0), ("bn",), ("same",), ("pool", "valid")]
    + [("flatten",), ("dense", 128, 0), ("bn",), ("same",), ("same",), ("dense", 10, 1)]
)
NET2 = [
    ("conv", 30, 2, "valid", 1),
    ("pool", "valid"),
    ("conv", 30, 2, "valid", 1),
    ("pool", "valid"),
    ("flatten",),
    ("dense", 10, 1),
]
FASHION_IMPROVED = (
    [("conv", 16, 3, "same", 0), ("bn",), ("same",), ("pool", "valid")]
    + [("conv", 32, 3, "same", 0), ("bn",), ("same",), ("pool", "valid")]
    + [("conv", 64, 3, "same", 0), ("bn",), ("same",), ("pool", "valid")]
    + [("flatten",), ("same",), ("dense", 128, 1), ("same",), ("dense", 10, 1)]
)
NETWORKS = {
    "mnist-cnn: seed 001's network": PORT,
    "mnist-cnn: improved network": MNIST_IMPROVED,
    "dense-vs-cnn: net2": NET2,
    "dense-vs-cnn: improved CNN": FASHION_IMPROVED,
}


def totals(layers):
    rows = count(layers)
    return [sum(row[i] for row in rows) for i in (1, 2, 3)]


def test_one_by_one_is_dense_at_every_pixel(glued):
    assert glued["one_by_one_kernel_shape"] == [1, 1, 64, 16]
    assert glued["one_by_one_params"] == 64 * 16 + 16 == 1_040
    assert glued["one_by_one_equals_dense"] is True
    assert 0 <= glued["one_by_one_max_difference"] < 1e-4


def test_one_by_one_with_numpy():
    rng = np.random.default_rng(1)
    maps, w, b = rng.normal(size=(7, 7, 64)), rng.normal(size=(64, 16)), rng.normal(size=16)
    per_pixel = np.array([[maps[i, j] @ w + b for j in range(7)] for i in range(7)])
    np.testing.assert_allclose(np.tensordot(maps, w, axes=1) + b, per_pixel)


def test_network_totals(glued):
    expected = {title: totals(layers) for title, layers in NETWORKS.items()}
    assert glued["network_totals"] == expected
    assert expected["mnist-cnn: seed 001's network"] == [890_250, 4_709_376, 51_210]
    assert expected["dense-vs-cnn: net2"][:2] == [14_590, 616_680]


def test_port_layer_by_layer(glued):
    rows = count(PORT)
    names = ["conv1", "pool1", "conv2", "pool2", "flatten", "dense1", "dropout1", "dense2"]
    assert [row[0] for row in glued["port_layer_costs"]] == names + ["dropout2", "logits"]
    assert [row[2:] for row in glued["port_layer_costs"]] == [list(row[1:]) for row in rows]
    assert [int(np.prod(row[1])) for row in glued["port_layer_costs"]] == [r[3] for r in rows]
    params, macs = totals(PORT)[:2]
    shares = {
        "dense1": (rows[5][1], rows[5][2]),
        "conv2": (rows[2][1], rows[2][2]),
    }
    for name, (p, m) in shares.items():
        assert glued[f"port_{name}_param_share"] == pytest.approx(100 * p / params)
        assert glued[f"port_{name}_mac_share"] == pytest.approx(100 * m / macs)
    assert round(glued["port_dense1_param_share"]) == 90
    assert round(glued["port_conv2_mac_share"]) == 77


def test_layer_macs_per_network(glued):
    for title, layers in NETWORKS.items():
        macs = [row[2] for row in count(layers) if row[2]]
        assert [m for _, m in glued["network_layer_macs"][title]] == macs, title


def test_the_pages_figures_agree_with_the_counts(glued):
    port, improved = count(PORT), count(MNIST_IMPROVED)
    fashion = [row[2] for row in count(FASHION_IMPROVED) if row[2]]
    expected = [
        ("4.7 million", totals(PORT)[1]),
        ("3.6 million", port[2][2]),
        ("2.0 million", totals(MNIST_IMPROVED)[1]),
        ("903,168", improved[5][2]),
        ("903,168", improved[9][2]),
        ("about 2 million", totals(FASHION_IMPROVED)[1]),
        ("903,168 each", fashion[1:3]),
    ]
    assert [(row[2], row[3]) for row in glued["stated_checks"]] == expected
    for stated, counted in expected:
        number = re.search(r"[\d.,]+", stated).group().replace(",", "")
        for value in counted if isinstance(counted, list) else [counted]:
            if "million" in stated:
                digits = len(number.split(".")[1]) if "." in number else 0
                assert round(value / 1e6, digits) == float(number), (stated, value)
            else:
                assert value == int(number), (stated, value)


def test_cheapest_and_largest(glued):
    all_totals = {title: totals(layers) for title, layers in NETWORKS.items()}
    assert min(all_totals, key=lambda t: all_totals[t][1]) == "dense-vs-cnn: net2"
    assert glued["net2_macs_millions"] == pytest.approx(616_680 / 1e6)
    assert max(all_totals, key=lambda t: all_totals[t][2]) == "mnist-cnn: improved network"
    megabytes = {t: v[2] * 4 * 128 / 1e6 for t, v in all_totals.items()}
    assert glued["activation_megabytes"] == pytest.approx(megabytes)
    assert glued["smallest_megabytes"] == pytest.approx(min(megabytes.values()))
    assert glued["largest_megabytes"] == pytest.approx(max(megabytes.values()))
    assert max(megabytes.values()) < 40  # the page: "memory does not limit training" here


def test_bottleneck(glued):
    direct = 14 * 14 * 9 * 64 * 64
    reduced = 14 * 14 * 64 * 16 + 14 * 14 * 9 * 16 * 64
    assert (glued["direct_macs"], glued["reduced_macs"]) == (direct, reduced)
    assert glued["reduction_ratio"] == pytest.approx(reduced / direct)
    assert f"{glued['reduction_ratio']:.2f}" == "0.28"


def layer_lines(page, function):
    """The lines of `function` in book/<page>.md that build a layer (`layers.` ...)."""
    text = (BOOK / f"{page}.md").read_text()
    body = re.search(rf"^def {function}\(.*?(?=^\S)", text, re.S | re.M)
    assert body, f"book/{page}.md defines no {function}"
    return [line.strip() for line in body.group().splitlines() if "layers." in line]


@pytest.mark.parametrize(
    "page, function",
    [
        ("mnist-cnn", "seed_001_cnn"),
        ("mnist-cnn", "conv_bn_relu"),
        ("mnist-cnn", "dense_bn_relu"),
        ("mnist-cnn", "improved_cnn"),
        ("dense-vs-cnn", "make_net2"),
        ("dense-vs-cnn", "conv_block"),
        ("dense-vs-cnn", "make_improved"),
    ],
)
def test_definitions_are_the_pages_own(page, function):
    assert layer_lines(PAGE, function) == layer_lines(page, function)


def solution(number):
    text = (BOOK / f"{PAGE}.md").read_text()
    match = re.search(rf"````{{solution}} {PAGE}-ex-{number}\n(.*?)````", text, re.S)
    assert match, f"no solution {number}"
    return " ".join(match.group(1).split())


def latex(number):
    return f"{number:,}".replace(",", "{,}")


def test_exercise_answers():
    assert latex(56 * 56 * 9 * 64 * 128) in solution(1)
    assert latex(28 * 28 * 9 * 64 * 128) in solution(1)
    assert latex(9 * 64 * 128 + 128) in solution(1)
    bottleneck = 14 * 14 * (256 * 64 + 9 * 64 * 64 + 64 * 256)
    single = 14 * 14 * 9 * 256 * 256
    assert latex(256 * 64 + 9 * 64 * 64 + 64 * 256) in solution(2)
    assert latex(bottleneck) in solution(2) and latex(single) in solution(2)
    assert f"{100 * bottleneck / single:.1f}%" in solution(2)
    values = 28 * 28 * 32
    assert latex(values) in solution(4) and latex(4 * values) in solution(4)
    assert latex(128 * 4 * values) in solution(4)
    assert f"{128 * 4 * values / 1e6:.1f} MB" in solution(4)


def test_page_has_its_figure(book):
    html = (book.html / "book" / f"{PAGE}.html").read_text()
    shown = re.findall(r'<img alt="([^"]+)"[^>]*src="[^"]+\.png"', html)
    assert any(a.startswith("Four bar charts") for a in shown), shown
    assert html.count("solution dropdown") >= 4
