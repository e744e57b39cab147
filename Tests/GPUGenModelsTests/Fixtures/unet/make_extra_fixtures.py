import torch, os
from diffusers import UNet2DModel
from safetensors.torch import save_file
torch.manual_seed(0)
cfgs = {
 "pad0": dict(sample_size=16, in_channels=2, out_channels=3, block_out_channels=(8,16,24), layers_per_block=2,
    down_block_types=("AttnDownBlock2D","DownBlock2D","AttnDownBlock2D"), up_block_types=("AttnUpBlock2D","UpBlock2D","AttnUpBlock2D"),
    norm_num_groups=4, attention_head_dim=None, downsample_padding=0, center_input_sample=True, mid_block_scale_factor=1.5,
    time_embedding_dim=40, flip_sin_to_cos=True, freq_shift=0, norm_eps=1e-4),
 "nomid": dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8,16), layers_per_block=1,
    down_block_types=("DownBlock2D","AttnDownBlock2D"), up_block_types=("AttnUpBlock2D","UpBlock2D"), norm_num_groups=8,
    attention_head_dim=4, mid_block_type=None, num_class_embeds=3, attn_norm_num_groups=2),
}
os.chdir(os.path.dirname(os.path.abspath(__file__)))
for name, c in cfgs.items():
    m = UNet2DModel(**c).eval()
    with torch.no_grad():
        for p in m.parameters(): p.normal_(0, 0.1)
    m.save_pretrained(name)
    x = torch.randn(3, c["in_channels"], c["sample_size"], c["sample_size"])
    t = torch.tensor([3, 500, 999])
    kw = {"class_labels": torch.tensor([0,2,1])} if "num_class_embeds" in c else {}
    with torch.no_grad(): y = m(x, t, **kw).sample
    save_file({"sample": x.contiguous(), "timestep": t.float(), "output": y.contiguous()}, f"{name}/io.safetensors")
    print(name, y.abs().max().item())
