"""Measure the activation-memory constants of flashgen.memory_estimate (C_TF, C_VAE, C_TINY) here.

Peak-RSS delta of one SD3-style transformer forward (fp32, 4 layers, width 512, dual attention
in the first two) at 256 and 512 px, of one decode of SD3.5's real VAE (random weights) at 256
and 512 px, and of one decode of a TAESD3-layout tiny decoder (random weights) at 256, 512 and
1024 px, normalised by B*N*D*4, C0*H*W*4 and C_last*H*W*4 (C_last: the tiny decoder's last
block width). Writes results/memory_calibration.json.

    .venv/bin/python benchmarks/memory_calibration.py   (1 thread, ~2-4 min)
"""

from __future__ import annotations

import gc
import json
import tempfile
from pathlib import Path

import torch

from flashgen.bench import env
from flashgen.bench.make_model import CONFIGS
from flashgen.models.tiny import build_taesd3_layout


def _peak_delta(fn) -> int:
    gc.collect()
    before = env.current_rss_bytes()
    env.reset_peak_rss()
    with torch.no_grad():
        fn()
    return env.peak_rss_bytes() - before


def main() -> None:
    from diffusers import AutoencoderKL, AutoencoderTiny, SD3Transformer2DModel

    torch.set_num_threads(1)
    out = {
        "device_info": env.device_info("cpu"),
        "versions": env.package_versions(),
        "git_commit": env.git_commit(),
    }
    out["rss_after_imports_gib"] = env.current_rss_bytes() / env.GIB
    tf = SD3Transformer2DModel(
        sample_size=64,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=4,
        attention_head_dim=64,
        num_attention_heads=8,
        joint_attention_dim=1024,
        caption_projection_dim=512,
        pooled_projection_dim=256,
        pos_embed_max_size=96,
        dual_attention_layers=(0, 1),
        qk_norm="rms_norm",
    ).eval()
    for px in (256, 512):
        h, text = px // 8, 333
        args = (torch.randn(1, 16, h, h), torch.randn(1, text, 1024), torch.randn(1, 256))
        delta = _peak_delta(lambda a=args, m=tf: m(*a, torch.tensor([500.0]), return_dict=False))
        n = (h // 2) ** 2 + text
        out[f"transformer_{px}px"] = {
            "delta_bytes": delta,
            "tokens": n,
            "c_tf": delta / (n * 512 * 4),
        }
    del tf
    cfg = json.loads((CONFIGS / "sd3.5-medium" / "vae" / "config.json").read_text())
    vae = AutoencoderKL.from_config(cfg).eval()
    for px in (256, 512):
        z = torch.randn(1, 16, px // 8, px // 8)
        delta = _peak_delta(lambda z=z, m=vae: m.decode(z, return_dict=False))
        out[f"vae_{px}px"] = {"delta_bytes": delta, "c_vae": delta / (128 * px * px * 4)}
    del vae
    with tempfile.TemporaryDirectory() as tmp:
        tiny = AutoencoderTiny.from_pretrained(build_taesd3_layout(tmp)).eval()
    last = tiny.config.decoder_block_out_channels[-1]
    for px in (256, 512, 1024):
        z = torch.randn(1, 16, px // 8, px // 8)
        delta = _peak_delta(lambda z=z, m=tiny: m.decode(z, return_dict=False))
        out[f"tiny_{px}px"] = {"delta_bytes": delta, "c_tiny": delta / (last * px * px * 4)}
    path = Path(__file__).parent / "results" / "memory_calibration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
