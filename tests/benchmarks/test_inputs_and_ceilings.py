"""Generated inputs are seeded, photo-sized JPEGs; peaks are looked up by GPU name."""

import cv2
import numpy as np
import pytest

from fakelocator.benchmarks.ceilings import host_copy_bandwidth, lookup_peak, matmul_ceiling
from fakelocator.benchmarks.inputs import KINDS, make_pool
from fakelocator.errors import FakeLocatorError


@pytest.mark.parametrize("kind", ["crop256", "direct224"])
def test_pools_are_seeded_jpegs_of_the_kind_size(kind):
    a, b, c = make_pool(kind, size=2, seed=1), make_pool(kind, size=2, seed=1), make_pool(kind, size=2, seed=2)
    assert a.encoded == b.encoded and a.encoded != c.encoded and a.encoded[0] != a.encoded[1]
    image = cv2.imdecode(np.frombuffer(a.item(0), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (*KINDS[kind], 3)
    assert a.encoded[0][:2] == b"\xff\xd8"  # JPEG
    assert a.item(2) == a.item(0) and a.items(1, 3) == [a.item(1), a.item(0), a.item(1)]
    assert a.describe()["distinct_images"] == 2


def test_a_1080p_frame_compresses_like_a_photo_not_like_noise():
    pool = make_pool("1080p", size=1)
    assert 100_000 < len(pool.item(0)) < 800_000  # random noise would be ~1.5 MB at quality 90


def test_unknown_kinds_are_refused():
    with pytest.raises(FakeLocatorError, match="4k"):
        make_pool("4k")


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM5"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA L4", "L4"), ("NVIDIA L40S", "L40S"),
    ("Tesla T4", "T4"), ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090"), ("NVIDIA A10", "A10"),
])
def test_peaks_are_found_by_name(name, expected):
    assert lookup_peak(name).name == expected


@pytest.mark.parametrize("name", [None, "", "AMD EPYC", "NVIDIA A10G", "NVIDIA Fake GPU"])
def test_unknown_devices_have_no_peak(name):
    assert lookup_peak(name) is None


def test_cpu_ceilings_are_measured():
    assert host_copy_bandwidth(nbytes=8 << 20, repeats=2)["gb_per_s"] > 0
    m = matmul_ceiling("cpu", n=128, repeats=2)
    assert m["fp32_tflops"] > 0 and "fp16_tflops" not in m
