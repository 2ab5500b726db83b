from scaletrain.common import hardware


def test_cuda_visible_devices_decides_the_gpu_count():
    assert hardware.gpu_count({"CUDA_VISIBLE_DEVICES": "0,1,3"}) == 3
    assert hardware.gpu_count({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert hardware.gpu_count({"CUDA_VISIBLE_DEVICES": "-1"}) == 0


def test_cpu_rank_count_is_bounded():
    assert [hardware.default_cpu_procs(c) for c in (1, 2, 8, 64)] == [2, 2, 4, 8]
