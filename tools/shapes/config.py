"""Architecture of the shapes-world model family (shipped sizes) and the reduced-width variants used
for the wiring fixtures (same block structure, smaller widths so each fixture stays small)."""
from . import nn_clip, nn_diffusers

IMAGE_SIZE = 64
LATENT_SIZE = 16
LATENT_CHANNELS = 4
MAX_LENGTH = 77

TEXT = dict(hidden=128, layers=4, heads=4, inter=512, act="quick_gelu")
VISION = dict(hidden=128, layers=3, heads=4, inter=256, act="quick_gelu", image_size=64, patch_size=8)
PROJECTION_DIM = 128

VAE = dict(block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8)

# SDXL's block layout (no attention at the highest resolution; attention at 8x8, 4x4 and in the mid block):
# with SD1's layout (attention at 16x16 too) self-attention over 256 tokens with 4 heads of width 8 took
# 60% of a training step; this layout trains 2.5x faster per step (0.83 vs 2.04 CPU-s at batch 32) and
# conditions on the text at 8x8 and 4x4, enough for 3x3 position cells. docs/TRAINING.md.
UNET = dict(block_out_channels=(32, 64, 128), layers_per_block=1, attention_head_dim=4, norm_num_groups=8,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))

# fixture widths (same structure)
TINY_TEXT = dict(hidden=32, layers=2, heads=4, inter=64, act="quick_gelu")
TINY_VISION = dict(hidden=32, layers=2, heads=4, inter=64, act="quick_gelu", image_size=64, patch_size=8)
TINY_VAE = dict(block_out_channels=(8, 8, 16), layers_per_block=1, norm_num_groups=4)
TINY_UNET = dict(UNET, block_out_channels=(8, 16, 16), norm_num_groups=4)


def text_cfg(vocab_size, bos, eos, arch=None, projection_dim=PROJECTION_DIM):
    a = arch or TEXT
    return nn_clip.text_config(vocab_size, a["hidden"], a["layers"], a["heads"], a["inter"], a["act"], bos, eos,
                               eos, projection_dim, MAX_LENGTH)


def vision_cfg(arch=None, projection_dim=PROJECTION_DIM):
    a = arch or VISION
    return nn_clip.vision_config(a["hidden"], a["layers"], a["heads"], a["inter"], a["act"], a["image_size"],
                                 a["patch_size"], projection_dim)


def vae_cfg(arch=None, scaling_factor=1.0):
    a = arch or VAE
    return nn_diffusers.vae_config(a["block_out_channels"], a["layers_per_block"], LATENT_CHANNELS,
                                   a["norm_num_groups"], IMAGE_SIZE, scaling_factor)


def unet_cfg(cross_attention_dim, arch=None):
    a = arch or UNET
    return nn_diffusers.unet_config(a["block_out_channels"], a["down_block_types"], a["up_block_types"],
                                    a["layers_per_block"], cross_attention_dim, a["attention_head_dim"],
                                    a["norm_num_groups"], LATENT_SIZE)
