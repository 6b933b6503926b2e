"""Every fine-tuning method and midpoint training under two-process DDP (gloo): all run through
`fit`'s gradient all-reduce, so both ranks must end with identical weights and identical curves."""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from tasks.finetune import FINETUNE_METHODS, finetune
from tasks.paths import MidpointSettings, train_midpoint
from tests.tasks.test_finetune import SETTINGS, synthetic_data, tiny_model

MIDPOINT = MidpointSettings(epochs=2, lr=0.05, batch_size=16, schedule="constant")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        data = synthetic_data()
        curves = {}
        for method in sorted(FINETUNE_METHODS):
            model = tiny_model(seed=0)
            rows = finetune(model, method, data, SETTINGS, seed=3, device="cpu")
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out_dir}/{method}-{rank}.st")
            curves[method] = rows
        a, b = tiny_model(seed=1).state_dict(), tiny_model(seed=2).state_dict()
        mid, rows = train_midpoint(tiny_model(seed=0), a, b, data.train, MIDPOINT, seed=4, device="cpu")
        save_file({k: v.contiguous() for k, v in mid.items()}, f"{out_dir}/midpoint-{rank}.st")
        curves["midpoint"] = rows
        with open(f"{out_dir}/curves-{rank}.txt", "w") as f:
            f.write(repr(curves))
        dist.barrier()   # both ranks done before either tears gloo down
    finally:
        dist.destroy_process_group()
    # Skip interpreter teardown: gloo's threads can abort it ("terminate called without an active
    # exception", SIGABRT) after all work is done and written. Errors above still propagate.
    os._exit(0)


def test_every_method_and_midpoint_training_agree_across_ranks(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    start = tiny_model(seed=0).state_dict()
    for name in [*sorted(FINETUNE_METHODS), "midpoint"]:
        rank0, rank1 = load_file(tmp_path / f"{name}-0.st"), load_file(tmp_path / f"{name}-1.st")
        for key in rank0:
            torch.testing.assert_close(rank0[key], rank1[key], msg=f"{name}: `{key}` differs across ranks")
        assert not torch.equal(rank0["head.weight"], start["head.weight"]), f"{name} did not train"
    assert (tmp_path / "curves-0.txt").read_text() == (tmp_path / "curves-1.txt").read_text()
