#!/usr/bin/env python3
"""BatchNorm2d fixtures for GPUGenNNTests (ModuleTests), written by PyTorch.

    python3 make_fixtures.py    write batchnorm.safetensors and batchnorm_state.safetensors next to this script

Needs `pip install torch safetensors`.

batchnorm.safetensors (float32):
    weight, bias          the affine parameters given to both modules (non-trivial values)
    x0 … x3               four fixed inputs (4, 3, 5, 3) with per-channel offsets and scales
    TAG/y0 … TAG/y2       outputs of three training-mode forwards on x0, x1, x2
    TAG/y3                output of the evaluation-mode forward on x3 that follows
    TAG/running_mean{k}, TAG/running_var{k}, TAG/num_batches_tracked{k}   the buffers after training step k
    TAG/running_mean, TAG/running_var, TAG/num_batches_tracked             the final buffers
  with TAG "momentum" for BatchNorm2d(3, momentum=0.1) and "cumulative" for BatchNorm2d(3, momentum=None).

batchnorm_state.safetensors: the state_dict of the momentum-0.1 module after those forwards, as PyTorch
holds it (num_batches_tracked an int64 scalar of shape []).
"""

import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
C, N, H, W = 3, 4, 5, 3


def main():
    g = torch.Generator().manual_seed(20240611)
    weight = torch.tensor([1.5, -0.75, 0.4])
    bias = torch.tensor([0.25, -1.0, 2.0])
    # Per-channel offsets and scales move the running statistics well away from (0, 1).
    offset = torch.tensor([3.0, -2.0, 0.5]).view(1, C, 1, 1)
    scale = torch.tensor([2.0, 0.5, 1.25]).view(1, C, 1, 1)
    xs = [torch.randn(N, C, H, W, generator=g) * scale + offset for _ in range(4)]

    out = {"weight": weight, "bias": bias}
    for k, x in enumerate(xs):
        out[f"x{k}"] = x
    for tag, momentum in [("momentum", 0.1), ("cumulative", None)]:
        bn = torch.nn.BatchNorm2d(C, momentum=momentum)
        with torch.no_grad():
            bn.weight.copy_(weight)
            bn.bias.copy_(bias)
        bn.train()
        with torch.no_grad():
            for k in range(3):
                out[f"{tag}/y{k}"] = bn(xs[k])
                out[f"{tag}/running_mean{k}"] = bn.running_mean.clone()
                out[f"{tag}/running_var{k}"] = bn.running_var.clone()
                out[f"{tag}/num_batches_tracked{k}"] = bn.num_batches_tracked.to(torch.float32).clone()
            bn.eval()
            out[f"{tag}/y3"] = bn(xs[3])
        out[f"{tag}/running_mean"] = bn.running_mean.clone()
        out[f"{tag}/running_var"] = bn.running_var.clone()
        out[f"{tag}/num_batches_tracked"] = bn.num_batches_tracked.to(torch.float32).clone()
        if tag == "momentum":
            state = {k: v.detach().clone().contiguous() for k, v in bn.state_dict().items()}
            assert state["num_batches_tracked"].dtype == torch.int64 and state["num_batches_tracked"].shape == ()
            save_file(state, os.path.join(HERE, "batchnorm_state.safetensors"))
    save_file(
        {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()},
        os.path.join(HERE, "batchnorm.safetensors"),
        # One metadata entry: with more, safetensors orders them by hash and the bytes change from run to run.
        metadata={"generator": f"make_fixtures.py (torch {torch.__version__})"},
    )


if __name__ == "__main__":
    main()
