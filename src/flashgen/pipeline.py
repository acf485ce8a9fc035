"""Text-to-image in four thin stages: encode_prompt -> prepare_latents -> denoise -> decode.
Image-to-image swaps the second for image_latents noised to the strength's sigma (a request
with an init_image); inpainting (a mask_image too) also puts the kept region back after each step
(sampling.inpaint), as diffusers' StableDiffusion3InpaintPipeline; `paste_back` then pastes the
start picture over the decoded image where the mask keeps it (AUTOMATIC1111's overlay).

For the same weights, seed, steps and guidance the images equal diffusers'
StableDiffusion3Pipeline (noise per image from its own CPU generator, the scheduler's shifted
schedule, batched CFG with guidance <= 1 meaning none, its Euler step's arithmetic: in bf16 the
latents are bit-equal, tests/test_pipeline.py). A distilled student carries its own
schedule ("sigmas" in flashgen.json) and samples guidance-free by default.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from flashgen import flow
from flashgen.devices import dtype_name, resolve_device, resolve_dtype, synchronize
from flashgen.errors import NonFiniteOutput, UsageError
from flashgen.masks import paste_back
from flashgen.models.loading import Components, load_components
from flashgen.models.prompt_encoding import PromptEmbeds, PromptEncoder
from flashgen.models.registry import ModelSource, resolve
from flashgen.models.tiny_decoder import check_decoder, decoder_label, default_decoder
from flashgen.noise import DEFAULT_SOURCE, NoiseStream
from flashgen.request import (
    DEFAULT_STRENGTH,
    GenerationRequest,
    GenerationResult,
    ResolvedSettings,
)
from flashgen.sampling import (
    keep_known,
    latent_mask,
    make_sigmas,
    sample_euler,
    sigmas_from_list,
    strength_sigmas,
)
from flashgen.sampling.guidance import batched_cfg_model_fn
from flashgen.sampling.samplers import AfterStep, ModelFn, StepInfo

StepCallback = Callable[[StepInfo], bool | None]
log = logging.getLogger(__name__)


def float32_decimals(values: torch.Tensor) -> list[float]:
    """The shortest decimals that round-trip each float32 value (0.8571, not 0.8571000099...):
    what settings and image metadata show, and torch.tensor() of them gives `values` back."""
    return [float(str(v)) for v in values.to(torch.float32).cpu().numpy()]


@dataclass(frozen=True)
class ModelDefaults:
    """What a request's None fields become: the model card's defaults."""

    steps: int
    guidance: float
    resolution: int
    sigmas: tuple[float, ...] | None  # a student's own schedule, used at its own step count


class Pipeline:
    """A loaded model. `generate(request)` runs the four stages; the stages and `velocity` are
    public so trainers and quantizers can reuse prompt encoding and the transformer call."""

    def __init__(
        self,
        components: Components,
        source: ModelSource,
        device: torch.device,
        dtype: torch.dtype,
        *,
        drop_t5: bool = False,
        cache_size: int = 32,
        decoder: str = "full",
    ):
        self.components = components
        self.decoder = decoder  # what decodes latents: "full", "tiny" or a tiny folder's name
        self.source = source
        self.device = device
        self.dtype = dtype
        self.drop_t5 = drop_t5
        self.card = components.card
        self.compiled = False  # flashgen.compiling: a load(compile=True) that succeeded
        self.memory_guard = None  # memory_estimate.MemoryGuard: refuses requests over the budget
        # inpainting: how a pixel mask becomes latent cells (sampling.inpaint.LATENT_MASK_RULES;
        # "nearest" reproduces diffusers' StableDiffusion3InpaintPipeline exactly)
        self.mask_rule = "cover"
        self._warned_unused_negative = False
        self.prompt_encoder = PromptEncoder(components, device, cache_size=cache_size)
        vae_cfg = components.vae.config
        self.vae_scale_factor = 2 ** (len(vae_cfg.block_out_channels) - 1)
        tcfg = components.transformer.config
        native = tcfg.sample_size * self.vae_scale_factor
        # the position table bounds the image size (SD3.5: 384 latent patches -> 6144 px)
        max_patches = getattr(tcfg, "pos_embed_max_size", None)
        self.max_side = (
            max_patches * tcfg.patch_size * self.vae_scale_factor if max_patches else None
        )
        self.defaults = ModelDefaults(
            steps=self.card.default_steps,
            guidance=float(self.card.default_guidance),
            resolution=self.card.resolution or int(native),
            sigmas=self.card.sigmas,
        )

    @property
    def model_id(self) -> str:
        return self.source.model_id

    @property
    def transformer(self):
        return self.components.transformer

    @property
    def vae(self):
        return self.components.vae

    @property
    def has_t5(self) -> bool:
        """Whether prompts can be encoded with T5 (the model has the slot and it was loaded)."""
        return self.components.text_encoder_3 is not None

    # -- settings ---------------------------------------------------------------------------

    def sigmas(self, steps: int | None = None) -> torch.Tensor:
        """The schedule for `steps` (None: the model default). A student's own schedule applies
        at its own step count; other counts use SD3's shifted schedule."""
        steps = steps or self.defaults.steps
        own = self.defaults.sigmas
        if own is not None and len([s for s in own if s > 0]) == steps:
            return sigmas_from_list(own)
        return make_sigmas(steps, self.components.shift)

    def resolve(self, request: GenerationRequest) -> ResolvedSettings:
        steps = request.steps or self.defaults.steps
        guidance = self.defaults.guidance if request.guidance is None else float(request.guidance)
        # only classifier-free guidance (> 1) runs the negative prompt: report what is used
        negative_prompt = request.negative_prompt if guidance > 1.0 else ""
        sigmas, strength = self.sigmas(steps), None
        if request.init_image is not None:
            strength = DEFAULT_STRENGTH if request.strength is None else float(request.strength)
            sigmas = strength_sigmas(sigmas, strength)
        return ResolvedSettings(
            model=self.model_id,
            steps=steps,
            guidance=guidance,
            sigmas=float32_decimals(sigmas),
            width=request.width,
            height=request.height,
            device=str(self.device),
            dtype=dtype_name(self.dtype),
            t5=self.has_t5 and not request.drop_t5,
            decoder=self.decoder,
            negative_prompt=negative_prompt,
            strength=strength,
            rng=request.rng,
        )

    def request(self, prompt: str, **fields) -> GenerationRequest:
        """A GenerationRequest at the model's native resolution unless width/height are given
        (GenerationRequest alone defaults to 64x64, the Shapes size)."""
        fields.setdefault("width", self.defaults.resolution)
        fields.setdefault("height", self.defaults.resolution)
        return GenerationRequest(prompt, **fields)

    # -- stage 1: prompts --------------------------------------------------------------------

    def encode_prompt(self, prompts: list[str] | str, drop_t5: bool = False) -> PromptEmbeds:
        """PromptEmbeds for a list of prompts (one row each), via the LRU cache."""
        if isinstance(prompts, str):
            prompts = [prompts]
        return self.prompt_encoder.encode(list(prompts), use_t5=not drop_t5)

    # -- the transformer call ----------------------------------------------------------------

    def velocity(self, x_t: torch.Tensor, sigma, embeds: PromptEmbeds) -> torch.Tensor:
        """v = transformer(x_t, sigma * 1000, embeds): the model's velocity prediction.

        x_t: [B, 16, h, w] latents; sigma: scalar or [B]; embeds: B rows."""
        sigma = torch.as_tensor(sigma, device=x_t.device, dtype=torch.float32)
        timestep = flow.to_timestep(sigma).expand(x_t.shape[0])
        assert len(embeds) == x_t.shape[0], (len(embeds), x_t.shape)
        return self.transformer(
            hidden_states=x_t,
            timestep=timestep,
            encoder_hidden_states=embeds.embeds,
            pooled_projections=embeds.pooled,
            return_dict=False,
        )[0]

    def model_fn(
        self, cond: PromptEmbeds, guidance: float = 1.0, uncond: PromptEmbeds | None = None
    ) -> ModelFn:
        """model_fn(x_t, sigma) -> v for the sampler: guidance-free, or batched CFG
        ([uncond; cond] in one call, diffusers' order) when guidance > 1."""
        if guidance <= 1.0:
            return lambda x, sigma: self.velocity(x, sigma, cond)
        if uncond is None:
            raise ValueError("guidance > 1 needs the unconditional (negative prompt) embeddings")
        both = PromptEmbeds.cat([uncond, cond])
        return batched_cfg_model_fn(lambda x2, sigma: self.velocity(x2, sigma, both), guidance)

    # -- stage 2: noise ----------------------------------------------------------------------

    def prepare_latents(
        self, seeds: list[int], height: int, width: int, rng: str = DEFAULT_SOURCE
    ) -> torch.Tensor:
        """Initial noise [len(seeds), C, h, w]: image i drawn from its own stream, seeded with
        seeds[i] (flashgen.noise; "cpu": a CPU generator, exactly as diffusers draws a single
        image), so results do not depend on batch size or device."""
        f = self.vae_scale_factor
        shape = (1, self.transformer.config.in_channels, height // f, width // f)
        noise = [NoiseStream(rng, s).randn(shape) for s in seeds]
        return torch.cat(noise).to(self.device, self.dtype)

    @torch.no_grad()
    def image_latents(
        self,
        image: Image.Image,
        seeds: list[int],
        height: int,
        width: int,
        rng: str = DEFAULT_SOURCE,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(known, noise), each [len(seeds), C, h, w]: the image resized to width x height and
        encoded by the pipeline's VAE (the tiny one too: its encoder), and the noise; image i from
        its own stream seeded with seeds[i] that draws, as diffusers' SD3 img2img and inpainting
        do, first the VAE posterior's sample and then the noise."""
        from diffusers.image_processor import VaeImageProcessor

        processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        pixels = processor.preprocess(image.convert("RGB"), height=height, width=width)
        encoded = self.vae.encode(pixels.to(self.device, self.vae.dtype))
        cfg = self.vae.config
        known, noise = [], []
        for s in seeds:
            stream = NoiseStream(rng, s)
            z = _posterior_sample(encoded, stream)
            known.append(((z - cfg.shift_factor) * cfg.scaling_factor).to(self.dtype))
            noise.append(stream.randn(z.shape).to(self.device, self.dtype))
        return torch.cat(known), torch.cat(noise)

    def prepare_mask(self, mask: Image.Image, height: int, width: int) -> torch.Tensor:
        """An inpainting mask [1, 1, h, w] at latent resolution: grey levels, resized to width x
        height and binarized at 0.5 (white: redraw) by diffusers' mask processor, then a latent
        cell redrawn only where all its pixels are (`mask_rule`, sampling.inpaint.latent_mask;
        "nearest" is diffusers' rule)."""
        from diffusers.image_processor import VaeImageProcessor

        processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor,
            do_normalize=False,
            do_binarize=True,
            do_convert_grayscale=True,
        )
        pixels = processor.preprocess(mask, height=height, width=width)
        m = latent_mask(pixels, self.vae_scale_factor, self.mask_rule)
        if pixels.any() and not m.any():
            log.warning(
                "flashgen: the mask covers no whole %dx%d-pixel latent cell, so nothing is "
                "redrawn: paint a larger area",
                self.vae_scale_factor,
                self.vae_scale_factor,
            )
        return m.to(self.device, self.dtype)

    # -- stage 3: sampling -------------------------------------------------------------------

    @torch.no_grad()
    def denoise(
        self,
        latents: torch.Tensor,
        sigmas: torch.Tensor,
        model_fn: ModelFn,
        callback: StepCallback | None = None,
        after_step: AfterStep | None = None,
    ) -> torch.Tensor:
        x0 = sample_euler(
            model_fn, latents, sigmas.to(self.device), callback=callback, after_step=after_step
        )
        if not torch.isfinite(x0).all():
            raise NonFiniteOutput(_nonfinite_message("latents", self.dtype))
        return x0

    # -- stage 4: pixels ---------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """Latents -> RGB images, as diffusers: VAE un-scaling, decode, [-1,1] -> uint8."""
        cfg = self.vae.config
        z = latents / cfg.scaling_factor + cfg.shift_factor
        pixels = self.vae.decode(z.to(self.vae.dtype), return_dict=False)[0]
        if not torch.isfinite(pixels).all():
            raise NonFiniteOutput(_nonfinite_message("decoded image", self.dtype))
        pixels = (pixels / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
        return [Image.fromarray(a) for a in (pixels * 255).round().astype(np.uint8)]

    def check_request(self, request: GenerationRequest) -> None:
        """UsageError if this model cannot make the requested size (cheap; before any work)."""
        _check_size(request, self.vae_scale_factor * self.transformer.config.patch_size)
        if self.max_side is not None:
            for name in ("width", "height"):
                if getattr(request, name) > self.max_side:
                    raise UsageError(
                        f"{name} {getattr(request, name)} is larger than {self.model_id} can make "
                        f"(at most {self.max_side} px per side; native {self.defaults.resolution})"
                    )

    # -- all four ----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self, request: GenerationRequest, callback: StepCallback | None = None
    ) -> GenerationResult:
        """Images for one request: seeds seed, seed+1, ... one per image."""
        settings = self.resolve(request)
        if request.negative_prompt and not settings.negative_prompt:
            self._warn_unused_negative(settings.guidance)
        if self.memory_guard is not None:  # before anything is allocated
            self.memory_guard(request, settings)
        self.check_request(request)
        timings: dict[str, float] = {}
        clock = _Clock(self.device, timings)
        n = request.num_images
        drop_t5 = self.drop_t5 or request.drop_t5
        with clock("encode"):
            cond = self.encode_prompt([request.prompt], drop_t5).repeat(n)
            uncond = None
            if settings.guidance > 1.0:
                uncond = self.encode_prompt([settings.negative_prompt], drop_t5).repeat(n)
        seeds = [request.seed + i for i in range(n)]
        keep = None  # inpainting: puts the kept region back after each step
        with clock("prepare_latents"):
            h, w = request.height, request.width
            if request.init_image is None:
                latents = self.prepare_latents(seeds, h, w, request.rng)
            else:
                sigma = torch.tensor(settings.sigmas[0], dtype=torch.float32)  # as the schedule
                known, noise = self.image_latents(request.init_image, seeds, h, w, request.rng)
                latents = flow.interpolate(known, noise, sigma)
                if request.mask_image is not None:
                    keep = keep_known(known, noise, self.prepare_mask(request.mask_image, h, w))
        with clock("denoise"):
            fn = self.model_fn(cond, settings.guidance, uncond)
            x0 = self.denoise(latents, torch.tensor(settings.sigmas), fn, callback, keep)
        with clock("decode"):
            images = self.decode(x0)
            if request.paste_back:
                images = [paste_back(im, request.init_image, request.mask_image) for im in images]
        timings["total"] = sum(timings.values())
        return GenerationResult(images, seeds, settings, request, timings)

    def _warn_unused_negative(self, guidance: float) -> None:
        if self._warned_unused_negative:
            return
        self._warned_unused_negative = True
        log.warning(
            "flashgen: negative prompt ignored: only guidance > 1 uses it and this request has "
            "%g (%s's default is %g); the images and their metadata are made without it "
            "(warned once)",
            guidance,
            self.model_id,
            self.defaults.guidance,
        )


def _posterior_sample(encoded, stream: NoiseStream) -> torch.Tensor:
    """The VAE's latent for one image, as diffusers' `retrieve_latents(..., sample_mode="sample")`
    makes it: a KL VAE's posterior mean + std * normals (drawn in the posterior's dtype, as
    `randn_tensor` draws them from a CPU generator), or a tiny autoencoder's latents as they are."""
    if hasattr(encoded, "latent_dist"):
        dist = encoded.latent_dist
        eps = stream.randn(dist.mean.shape, dtype=dist.parameters.dtype)
        return dist.mean + dist.std * eps.to(dist.mean.device)
    if hasattr(encoded, "latents"):
        return encoded.latents
    raise AttributeError("Could not access latents of provided encoder_output")


class _Clock:
    """Times `with clock("stage"):` blocks into a dict (synchronising the GPU at each end)."""

    def __init__(self, device: torch.device, into: dict[str, float]):
        self.device, self.into = device, into

    def __call__(self, name: str):
        self.name = name
        return self

    def __enter__(self):
        synchronize(self.device)
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        synchronize(self.device)
        self.into[self.name] = time.perf_counter() - self.t0


def _check_size(request: GenerationRequest, multiple: int) -> None:
    for name in ("width", "height"):
        v = getattr(request, name)
        if v % multiple:
            lo = max(multiple, v // multiple * multiple)
            raise UsageError(
                f"{name} must be a multiple of {multiple} for this model, got {v}; "
                f"nearest valid: {lo} or {lo + multiple}"
            )


def _nonfinite_message(what: str, dtype: torch.dtype) -> str:
    hint = " (fp16 overflows in places: try bf16 or fp32)" if dtype == torch.float16 else ""
    return f"the model produced NaN or infinite values in the {what}{hint}; no image was written"


def load(
    model: str | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    drop_t5: bool = False,
    cache_size: int = 32,
    profile: str | None = None,
    max_memory: float | None = None,
    decoder: str | None = None,
    compile: bool = False,
) -> Pipeline:
    """Load a model for generation: a built-in name, a diffusers folder or a single .safetensors
    file (None: the default built-in). Offline: nothing is ever downloaded.

    device: None/"auto" (cuda -> mps -> cpu), "cpu", "cuda", "mps". dtype: None/"auto" (bf16
    on a CPU where it is the faster dtype, else fp32 on CPU: flashgen.devices; bf16 on CUDA),
    "fp32", "bf16", "fp16" (not on CPU). drop_t5: never load the T5 slot (saves its memory;
    prompts are encoded T5-free). profile: "phone", "laptop" or "desktop" (flashgen.profiles: T5 slot,
    quantization, VAE tiling, offload); max_memory: a budget in GiB that picks the profile when
    none is given and refuses, before allocating, a load or a request whose estimate exceeds it
    (OutOfMemoryBudget; diffusers folders only, not single files). decoder: "full" (the
    model's VAE), "tiny" (the model's own tiny decoder) or a TAESD-layout AutoencoderTiny
    folder such as madebyollin/taesd3 (flashgen.models.tiny_decoder): a much cheaper decode on
    CPUs; None: the model's own default (flashgen.json "default_decoder"; "full" unless it says
    otherwise). compile: torch.compile the transformer, decoder and text encoders now, warmed up
    with one generation (flashgen.compiling: faster generations after a slower load; on failure
    a warning and the eager pipeline; `pipe.compiled` says which).
    """
    source = resolve(model)
    if decoder is None:
        decoder = default_decoder(source)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    plan = folder = None
    tiny_dir = check_decoder(decoder, source)  # the estimates count it in place of the VAE
    if profile is not None or max_memory is not None:
        from flashgen.profiles import plan_load

        folder = source.path if source.kind != "single_file" else None
        plan = plan_load(
            folder, profile, max_memory, dev, dt, decoder_dir=tiny_dir, drop_t5=drop_t5
        )
    elif source.kind != "single_file":  # a plain load that would not fit degrades, logged
        from flashgen.profiles import auto_plan

        folder = source.path
        plan = auto_plan(folder, dev, dt, drop_t5, decoder_dir=tiny_dir)
    if plan is not None:
        drop_t5 = drop_t5 or plan.drop_t5
    options = plan.component_options if plan is not None else None
    components = load_components(
        source, dtype=dt, drop_t5=drop_t5, component_options=options, decoder=decoder
    )
    for module in components.modules().values():
        module.to(dev)
    if dev.type in ("cpu", "cuda"):
        # the VAE decoder is all convolutions: NHWC weights make oneDNN/cuDNN pick faster kernels
        # (the Shapes decoder: 1.3-1.9x on this CPU; neutral at SD3.5's width); same maths
        components.vae.to(memory_format=torch.channels_last)
    pipe = Pipeline(
        components,
        source,
        dev,
        dt,
        drop_t5=drop_t5,
        cache_size=cache_size,
        decoder=decoder_label(decoder),
    )
    if plan is not None:
        from flashgen.memory_apply import apply_plan

        apply_plan(pipe, plan, folder)
    if compile:
        from flashgen.compiling import compile_pipeline

        pipe.compiled = compile_pipeline(pipe)
    return pipe
