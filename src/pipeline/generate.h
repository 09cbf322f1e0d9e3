/* Text-to-image and image-to-image generation for SD 1.x / 2.x (and LCM) models: the pipeline behind
 * tdm_generate (public API in tandem.h, implementation of the API objects in api.c).
 *
 * Flow (diffusers StableDiffusionPipeline / StableDiffusionImg2ImgPipeline / LatentConsistencyModelPipeline,
 * prompt handling as A1111):
 *   1. text: prompt and negative prompt -> 77-token windows (75 content tokens each, A1111 emphasis
 *      weights when enabled; comma backtracking as A1111) -> text encoder (clip skip) -> per-window
 *      emphasis rescale -> windows concatenated along the sequence axis; the prompt with fewer windows
 *      is padded with the encoding of the empty prompt's window (A1111 pad_cond_uncond).
 *   2. latents: txt2img: noise(stream 0) * init_noise_sigma. img2img: init image resized (Lanczos) to
 *      the target size, [-1, 1], VAE encode, z = mean + exp(logvar / 2) * noise(stream 2^32 + 1)
 *      (a sample of the posterior, as diffusers' retrieve_latents(sample_mode="sample")),
 *      x0 = z * scaling_factor, x = add_noise(x0, noise(stream 2^32), first kept timestep).
 *   3. loop: x_in = scale_model_input(x); classifier-free guidance runs the unconditional and the
 *      conditional pass as ONE UNet call with batch 2 (context [uncond; cond]):
 *      eps = eps_u + g (eps_c - eps_u); guidance <= 1 runs the conditional pass only.
 *      LCM (UNet time_cond_proj_dim > 0): no CFG batch; w = g - 1 goes through the guidance embedding
 *      (timestep_cond); the negative prompt is not used; the result is the last step's denoised output.
 *      Stochastic samplers draw noise k from stream 1 + k.
 *   4. VAE decode of x / scaling_factor (+ shift_factor when the VAE has one) -> RGB8.
 * Noise streams are tdm_randn(seed, stream, offset 0...) (Philox): the image does not depend on the
 * thread count.
 * Steps 1-4 are ONE function, tdm_gen_execute (below), whose request also says where the run starts
 * (noise / a clean latent / an image) and which streams it draws from: tdm_generate and every stage of
 * the adaptive pipeline and of tandem eval run it. */
#ifndef TDM_PIPELINE_GENERATE_H
#define TDM_PIPELINE_GENERATE_H

#include <stdint.h>

#include "base/arena.h"
#include "models/controlnet.h"
#include "pipeline/sd_model.h"
#include "sampling/sampler.h"
#include "tandem.h"
#include "tensor/ops.h"

/* Noise streams of tdm_randn (documented in docs/CLI.md). */
#define TDM_STREAM_INIT_LATENT 0ull               /* txt2img initial latent noise */
#define TDM_STREAM_SAMPLER_BASE 1ull              /* sampler draw k: stream 1 + k */
#define TDM_STREAM_IMG2IMG_NOISE (1ull << 32)     /* img2img: noise added to the encoded image */
#define TDM_STREAM_VAE_POSTERIOR ((1ull << 32) + 1) /* img2img: VAE posterior sample */

/* Generation parameters with every default resolved. */
typedef struct tdm_gen_plan {
    const char *prompt, *negative; /* never NULL */
    int steps;
    float guidance;
    tdm_sampler_kind kind;
    int karras;
    const char *sampler; /* public name ("euler_a", "dpmpp_2m_karras", ...) */
    float eta;
    uint64_t seed;
    int width, height;
    float strength; /* 1 for txt2img */
    int img2img;
    int clip_skip;  /* A1111 convention (1 = last layer) */
    int emphasis;
    int lcm;        /* LCM model: guidance embedding instead of CFG */
    int use_cfg;    /* batched unconditional pass */
    /* SDXL micro-conditioning (pipeline/sdxl.h; defaults resolved as diffusers: original = target = the
     * output size, crop 0, 0, aesthetic 6.0 / negative 2.5) */
    int original_width, original_height;
    int crop_top, crop_left;
    int target_width, target_height;
    float aesthetic_score, negative_aesthetic_score;
} tdm_gen_plan;

/* Model defaults (shared with tdm_model_get_info). */
typedef struct tdm_gen_defaults {
    int width, height, steps;
    float guidance;
    const char *sampler;
    int lcm;
    int lcm_lora;      /* an LCM-LoRA on a plain UNet (tdm_sd_model_lcm_lora): LCM defaults, CFG as usual */
    int size_multiple; /* image sides must be multiples of this (VAE scale x UNet 2^(levels-1)) */
} tdm_gen_defaults;

void tdm_gen_model_defaults(const tdm_sd_model *m, tdm_gen_defaults *d);

/* Resolves defaults and validates p against the model (init image size used for img2img defaults). */
tdm_code tdm_gen_resolve(const tdm_sd_model *m, const tdm_generate_params *p, tdm_gen_plan *plan, tdm_status *st);

/* A1111 display name of a public sampler name ("Euler a", "DPM++ 2M Karras", ...). */
const char *tdm_gen_sampler_label(const char *sampler);

/* ---- text conditioning (generate_text.c) ---- */

typedef struct tdm_text_cond {
    int n_windows; /* windows per prompt after padding (>= 1) */
    int len;       /* n_windows * 77 tokens */
    int C;         /* hidden width */
    float *cond;   /* [len, C] */
    float *uncond; /* [len, C], NULL when not needed */
    /* SDXL: text_encoder_2's projected pooled output (the UNet's text_embeds); 0 / NULL otherwise */
    int pooled_dim;
    float *pooled_cond;   /* [pooled_dim] */
    float *pooled_uncond; /* [pooled_dim], NULL when not needed */
} tdm_text_cond;

/* Encodes the prompt (and the negative prompt when need_uncond) into arena memory. */
tdm_code tdm_gen_encode_text(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena, const tdm_gen_plan *plan,
                             int need_uncond, tdm_text_cond *out, tdm_status *st);
/* The conditioning tdm_gen_execute would compute for p (defaults resolved; the negative prompt when p uses
 * classifier-free guidance), into arena memory: for a request's `text`, to encode once for several runs. */
tdm_code tdm_gen_encode_params(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena,
                               const tdm_generate_params *p, tdm_text_cond *out, tdm_status *st);

/* tdm_generate: txt2img (start NOISE) or img2img (start PIXELS from p->init_image, the sampler's own
 * img2img rule) with the generate streams, through tdm_gen_execute. ex: the engine's executor. */
tdm_code tdm_gen_run(const tdm_sd_model *m, const tdm_exec *ex, const tdm_generate_params *p, tdm_image *out,
                     tdm_generate_stats *stats, tdm_status *st);

/* ---- the denoising stage: the ONE text-conditioning + sampler loop of the project ----
 * tdm_generate (through tdm_gen_run) and every stage of the adaptive pipeline (student, teacher
 * refinement, teacher regeneration; pipeline/adaptive.c) and of the evaluation (pipeline/eval.c) run
 * tdm_gen_execute. A request says where the run starts and which noise streams it draws from:
 *   NOISE   x = noise(streams.init) * init_noise_sigma                               (txt2img)
 *   LATENT  x0 = the given clean latent (scaled, [Cl, h, w]); x = add_noise(x0, noise(streams.add_noise),
 *           first kept timestep)                                                    (latent hand-off)
 *   PIXELS  x0 = scaling_factor * (mean + exp(logvar / 2) noise(streams.posterior)) of the VAE-encoded
 *           image (Lanczos-resized to the target size); then as LATENT              (img2img, pixel hand-off)
 * then the sampler loop (ControlNets of p->controls applied), sampler draw k from streams.sampler_base + k,
 * and the VAE decode.
 * Masked editing (edit_mask, LATENT / PIXELS only; blended latent diffusion, Avrahami et al. 2023): after
 * step i the sample outside the mask is replaced by the start's x0 noised to the level of step i + 1 with
 * the start's own noise (add_noise stream), and after the last step by x0 itself:
 *   x = m x + (1 - m) add_noise_at(i + 1, x0, z)        m [h, w] in [0, 1], broadcast over the channels
 * so the region outside the mask keeps the start latent exactly. With region_init (PIXELS) the region starts
 * from another image's latent (the source with the region filled from its surroundings). */

typedef enum tdm_gen_start {
    TDM_GEN_START_NOISE = 0,
    TDM_GEN_START_LATENT,
    TDM_GEN_START_PIXELS
} tdm_gen_start;

typedef struct tdm_gen_streams {
    uint64_t init;         /* NOISE: initial latent noise */
    uint64_t sampler_base; /* sampler draw k: stream sampler_base + k */
    uint64_t add_noise;    /* LATENT / PIXELS: the noise added at the first kept step */
    uint64_t posterior;    /* PIXELS: the VAE posterior sample */
} tdm_gen_streams;

/* The streams of tdm_generate: 0, 1 + k, 2^32, 2^32 + 1 (docs/CLI.md). */
tdm_gen_streams tdm_gen_streams_generate(void);

typedef struct tdm_gen_request {
    /* prompt, negative prompt, steps, guidance, sampler, eta, seed, size, clip skip, emphasis, progress and
     * controls (ControlNet); init_image only sets the default size (and is validated); strength is used by
     * LATENT / PIXELS starts when `strength` below is NAN */
    const tdm_generate_params *p;
    const tdm_text_cond *text;        /* conditioning already encoded for this model and p (NULL: encode p's
                                         prompts; then the ENCODE_TEXT progress stage is reported) */
    tdm_gen_start start;
    const float *x0;       /* LATENT: [Cl, h, w] */
    const tdm_image *init; /* PIXELS: RGB8, any size */
    int grid_steps;        /* LATENT / PIXELS: schedule length N (0: the resolved steps) */
    double strength;       /* LATENT / PIXELS: fraction of the schedule kept, (0, 1] (NAN: p->strength) */
    tdm_img2img_rule rule; /* LATENT / PIXELS: how the kept steps are chosen (TDM_IMG2IMG_AUTO: the
                              sampler's img2img rule, as tdm_generate; GET_TIMESTEPS: the refinement's) */
    tdm_gen_streams streams;
    int want_latent;       /* also return the final latent (what the VAE decodes) */
    const float *edit_mask; /* LATENT / PIXELS: [h, w] latent-resolution mask, 1 = edited, 0 = kept (NULL: none) */
    /* Region fill (PIXELS with edit_mask): the masked region starts from this image's latent instead of init's,
     * x0_start = m x0(region_init) + (1 - m) x0(init), both encoded with the same posterior noise; the blending
     * keeps x0(init) outside (NULL: init everywhere; same size as init) */
    const tdm_image *region_init;
    /* Paste-back (masked editing): after decoding, every pixel where paste_region is 0 is paste_source's
     * ([H, W] and an RGB8 image of the output's size; NULL: none). */
    const unsigned char *paste_region;
    const tdm_image *paste_source;
} tdm_gen_request;

/* x0 [Cl, H/s, W/s] = scaling_factor * a sample (noise stream `stream` of seed) of the VAE posterior of img
 * resized to W x H (Lanczos when the size differs): the PIXELS start's clean latent. Scratch from arena
 * (released on return). */
tdm_code tdm_gen_encode_image(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena, const tdm_image *img,
                              int W, int H, uint64_t seed, uint64_t stream, float *x0, tdm_status *st);

/* A request with the generate streams, start NOISE, strength NAN. */
void tdm_gen_request_init(tdm_gen_request *r, const tdm_generate_params *p);

typedef struct tdm_gen_result {
    tdm_image image;      /* decoded RGB8 */
    float *latent;        /* [Cl, h, w] (malloc) with want_latent: the scaled latent the VAE decoded */
    int Cl, h, w;         /* latent shape */
    tdm_generate_stats stats;
    float first_timestep; /* timestep of the first step run */
    double start_sigma;   /* LATENT / PIXELS: 1 - alphabar at the first step run (NAN for NOISE) */
} tdm_gen_result;

tdm_code tdm_gen_execute(const tdm_sd_model *m, const tdm_exec *ex, const tdm_gen_request *req, tdm_gen_result *out,
                         tdm_status *st);
void tdm_gen_result_free(tdm_gen_result *r);

/* alphabar at a (possibly fractional) timestep t, linear between table entries. */
double tdm_alphabar_at(const float *alphas_cumprod, int n_train, double t);

/* ---- ControlNet (generate_control.c) ---- */

#define TDM_GEN_MAX_CONTROLS 8

typedef struct tdm_gen_controls {
    int n;
    const tdm_control *c;                     /* [n] (the caller's) */
    float *emb[TDM_GEN_MAX_CONTROLS];         /* conditioning embedding per control [1, C0, h, w] */
    int n_down;
    float *down[TDM_CONTROLNET_MAX_RESIDUALS]; /* summed down residuals [B, C_i, h_i, w_i] */
    float *mid;                               /* summed mid residual */
    int calls;                                /* ControlNet forward calls so far */
} tdm_gen_controls;

/* diffusers controlnet_keep: step i of n is controlled iff i / n >= start and (i + 1) / n <= end. */
int tdm_gen_control_active(int i, int n, float start, float end);
/* Validates p->controls against the model (count, images, scale, start < end, ControlNet fits the UNet). */
tdm_code tdm_gen_controls_validate(const tdm_sd_model *m, const tdm_generate_params *p, tdm_status *st);
/* Control images -> [0, 1] tensors at W x H (Lanczos when the size differs) -> embeddings, and the residual
 * buffers for batch B at latent h x w, all in arena (kept for the run). */
tdm_code tdm_gen_controls_prepare(const tdm_sd_model *m, const tdm_exec *ex, tdm_arena *arena,
                                  const tdm_generate_params *p, int W, int H, int h, int w, int B,
                                  tdm_gen_controls *gc, tdm_status *st);
/* Runs the ControlNets active at step i of n on the UNet inputs *in (the same batched sample, timesteps
 * and context: with CFG the condition is shared by both halves) and points in's residual fields at their
 * sum, or clears them when none is active. */
tdm_code tdm_gen_controls_step(tdm_gen_controls *gc, const tdm_exec *ex, tdm_arena *arena, int i, int n,
                               tdm_unet_inputs *in, tdm_status *st);

#endif
