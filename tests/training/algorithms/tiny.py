"""Sizes and prompts of the tiny generators the algorithm tests build (not the shipped defaults)."""

import dataclasses

from training.algorithms.builders import GeneratorSpec, TextEncoderSpec

_SENTENCE = "a one two three red blue green yellow circle circles square squares triangle left of right and"
WORDS = _SENTENCE.split()
PROMPTS = ["a red circle", "two blue squares"]

_TEXT = TextEncoderSpec(hidden_size=16, layers=1, heads=2, intermediate_size=32, max_length=8)
# Smaller than the shipped defaults so the whole suite runs in well under a minute on 2 cores.
TINY_SPECS = {
    "shapes-image-eps": GeneratorSpec("shapes-image-eps", resolution=16, channels=(16, 32), heads=2, text=_TEXT),
    "shapes-image-flow": GeneratorSpec(
        "shapes-image-flow", resolution=16, heads=2, flow_layers=1, flow_head_dim=8, text=_TEXT
    ),
    "shapes-video": GeneratorSpec("shapes-video", resolution=8, channels=(16, 16), heads=2, frames=3, text=_TEXT),
    "shapes-multiview": GeneratorSpec(
        "shapes-multiview", resolution=8, channels=(16, 16), heads=2, frames=4, text=_TEXT
    ),
    # The shipped video and multi-view models are flow-matching; the keys above keep the epsilon path
    # of the same architectures tested.
    "shapes-video-flow": GeneratorSpec(
        "shapes-video",
        resolution=8,
        channels=(16, 16),
        heads=2,
        frames=3,
        family="flow",
        flow_shift=4.0,
        frame_conditioned=True,
        text=_TEXT,
    ),
    "shapes-multiview-flow": GeneratorSpec(
        "shapes-multiview", resolution=8, channels=(16, 16), heads=2, frames=4, family="flow", text=_TEXT
    ),
}

# The shipped video model's backbone: one 2D UNet pass over the clip, its frames stacked as channels.
TINY_SPECS["shapes-video-stacked"] = dataclasses.replace(
    TINY_SPECS["shapes-video-flow"], frame_conditioned=False, video_backbone="unet2d"
)


def tiny_sd_pipeline():
    """A tiny latent StableDiffusionPipeline (VAE, UNet, CLIP text encoder, DDIM), built from configs."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    from training.algorithms.builders import build_text_encoder

    torch.manual_seed(0)
    text_encoder, tokenizer = build_text_encoder(
        TextEncoderSpec(hidden_size=16, layers=1, heads=2, intermediate_size=32, max_length=8), WORDS
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=16,
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        set_alpha_to_one=False,
        steps_offset=1,
        clip_sample=False,
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe
