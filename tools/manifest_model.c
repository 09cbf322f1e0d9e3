/* manifest_model: writes random-weight model folders with the exact tensor names and shapes of the
 * full-size manifests (../shared/fixtures/manifest-*), for the preset smoke test (tools/preset_smoke.sh,
 * docs/PRESETS.md). The weights are seeded uniform values in float16 at torch's default-init scale (as
 * `tandem bench` builds them: matrices U(+-1/sqrt(fan_in)), biases U(+-0.02), norm gains U(0.9, 1.1),
 * embeddings U(+-0.035)); the configs are the published ones stored in each manifest's case.json. They
 * prove loading, shapes and memory, not image quality.
 *
 * Build (the script does it): cc -O2 -Iinclude -Isrc tools/manifest_model.c build/libtandem.a -lcjson -lm
 * Usage: manifest_model FIXTURES OUT [--seed N] [--only LIST]
 *   writes, under OUT (an existing file of the right size is kept):
 *     sd15/          SD1.5 (diffusers folder; text_encoder, unet, vae, PNDM scheduler) + unet_cd/ (a second
 *                    SD1.5-shaped UNet, other seed: the CD-SD1.5 student, --student-unet unet_cd)
 *     lcm-lora-sdv1-5.safetensors   LCM-LoRA SD1.5 (kohya names, manifest-lcm-lora-sd15/lora.json)
 *     sdxl-base/     SDXL base (text_encoder, text_encoder_2, unet, vae, Euler scheduler) + unet_lcm/ (LCM-SDXL
 *                    UNet: --student-unet unet_lcm)
 *     sdxl-turbo/    SDXL-Turbo-shaped folder: the base folder's components (symlinks) with SDXL-Turbo's
 *                    scheduler config (EulerAncestral, trailing)
 *     sdxl-refiner/  SDXL refiner (unet from manifest-sdxl-refiner; text_encoder_2 and vae: the base's, as
 *                    published, symlinked)
 *   LIST: comma-separated of sd15, sdxl (base + turbo + refiner); default both.
 * Tokenizers are symlinks to FIXTURES/tokenizer-clip (third-party files: never copied). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/numeric.h"

static const char *g_fix;
static uint64_t g_seed = 0;

static void die(const char *fmt, const char *a) {
    fprintf(stderr, "manifest_model: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    exit(1);
}

/* snprintf into a path buffer; a path that does not fit is fatal. */
static void pathf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *buf, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= n) die("path too long: %s", buf);
}

static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) die("cannot read %s", path);
    buf[n] = '\0';
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) die("%s: not JSON", path);
    return j;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) die("cannot write %s", path);
}

static void mkdirs(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("cannot create %s", path);
}

/* symlink link -> target (an existing link is replaced) */
static void link_to(const char *target, const char *link) {
    char real[PATH_MAX];
    if (!realpath(target, real)) die("missing %s", target);
    unlink(link);
    if (symlink(real, link) != 0) die("cannot link %s", link);
}

static uint64_t mix64(uint64_t z) { /* splitmix64 finaliser */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s) { /* FNV-1a */
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Writes the manifest `man` (name -> shape) as a float16 safetensors file of seeded random values (seed
 * mixed with each tensor's name: the same name and seed give the same values in every file). 0-dim tensors
 * (LoRA alpha) get `scalar`. Skipped when the file exists with the expected size. */
static void write_random(const char *path, const cJSON *man, uint64_t seed, float scalar) {
    cJSON *hdr = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(hdr, "__metadata__"), "format", "pt");
    unsigned long long off = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, man) {
        cJSON *t = cJSON_AddObjectToObject(hdr, e->string);
        cJSON_AddStringToObject(t, "dtype", "F16");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        unsigned long long n = 1;
        const cJSON *d;
        cJSON_ArrayForEach(d, e) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber(d->valuedouble));
            n *= (unsigned long long)d->valuedouble;
        }
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        off += 2 * n;
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    }
    char *text = cJSON_PrintUnformatted(hdr);
    cJSON_Delete(hdr);
    size_t hl = strlen(text), padded = (hl + 7) & ~(size_t)7;
    struct stat sb;
    if (stat(path, &sb) == 0 && (unsigned long long)sb.st_size == 8 + padded + off) {
        printf("kept %s\n", path);
        free(text);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot write %s", path);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((unsigned long long)padded >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(text, 1, hl, f);
    for (size_t i = hl; i < padded; i++) fputc(' ', f);
    free(text);
    enum { CHUNK = 1 << 16 };
    uint16_t *buf = malloc(CHUNK * sizeof *buf);
    if (!buf) die("out of memory (%s)", path);
    cJSON_ArrayForEach(e, man) {
        int nd = 0;
        double dims[8] = {0};
        const cJSON *d;
        cJSON_ArrayForEach(d, e) if (nd < 8) dims[nd++] = d->valuedouble;
        unsigned long long n = 1;
        for (int i = 0; i < nd; i++) n *= (unsigned long long)dims[i];
        const char *name = e->string;
        float lo, span;
        if (nd == 0) lo = scalar, span = 0;
        else if (nd == 1 && strstr(name, "norm") && strstr(name, ".weight")) lo = 0.9f, span = 0.2f;
        else if (nd == 1) lo = -0.02f, span = 0.04f;
        else if (strstr(name, "embedding")) lo = -0.035f, span = 0.07f;
        else {
            const float a = (float)(1.0 / sqrt((double)n / dims[0])); /* fan_in = n / out */
            lo = -a, span = 2 * a;
        }
        uint64_t x = mix64(seed ^ hash_name(name)) | 1;
        for (unsigned long long i = 0; i < n; i += CHUNK) {
            size_t m = n - i < CHUNK ? (size_t)(n - i) : CHUNK;
            for (size_t j = 0; j < m; j++) { /* xorshift64* */
                x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
                const float u = (float)((x * 0x2545f4914f6cdd1dull) >> 40) * (1.0f / 16777216.0f);
                buf[j] = tdm_f32_to_f16(lo + span * u);
            }
            if (fwrite(buf, 2, m, f) != m) die("write failed: %s (disk full?)", path);
        }
    }
    free(buf);
    if (fclose(f) != 0) die("write failed: %s", path);
    printf("wrote %s (%.2f GB)\n", path, (double)(8 + padded + off) / 1e9);
}

/* OUT/<dir>/<name>/: config.json from <case>/case.json config.<cfg> + random weights from <case>/<manifest>. */
static void component(const char *root, const char *name, const char *case_name, const char *cfg, const char *manifest,
                      const char *file, uint64_t seed) {
    char p[PATH_MAX], q[PATH_MAX];
    pathf(p, sizeof p, "%s/%s", root, name);
    mkdirs(p);
    pathf(q, sizeof q, "%s/%s/case.json", g_fix, case_name);
    cJSON *cs = load_json(q);
    const cJSON *c = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cs, "config"), cfg), "config");
    if (!c) die("%s: no config", q);
    char *text = cJSON_Print(c);
    pathf(q, sizeof q, "%s/%s/config.json", root, name);
    write_text(q, text);
    free(text);
    cJSON_Delete(cs);
    pathf(q, sizeof q, "%s/%s/%s", g_fix, case_name, manifest);
    cJSON *man = load_json(q);
    pathf(p, sizeof p, "%s/%s/%s", root, name, file);
    write_random(p, man, seed, 1.0f);
    cJSON_Delete(man);
}

static void tokenizer(const char *root, const char *name) {
    char p[PATH_MAX], q[PATH_MAX];
    pathf(p, sizeof p, "%s/%s", root, name);
    mkdirs(p);
    const char *files[2] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        pathf(q, sizeof q, "%s/tokenizer-clip/%s", g_fix, files[i]);
        pathf(p, sizeof p, "%s/%s/%s", root, name, files[i]);
        link_to(q, p);
    }
}

static void scheduler(const char *root, const char *json) {
    char p[PATH_MAX];
    pathf(p, sizeof p, "%s/scheduler", root);
    mkdirs(p);
    pathf(p, sizeof p, "%s/scheduler/scheduler_config.json", root);
    write_text(p, json);
}

static void file_at(char *buf, size_t n, const char *root, const char *rel) { pathf(buf, n, "%s/%s", root, rel); }

#define UNET_COMP "[\"diffusers\", \"UNet2DConditionModel\"]"

/* runwayml/stable-diffusion-v1-5 scheduler/scheduler_config.json */
static const char *SCHED_SD15 =
    "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", \"beta_end\": 0.012, "
    "\"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000, "
    "\"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1, \"trained_betas\": null, "
    "\"clip_sample\": false}\n";
/* stabilityai/stable-diffusion-xl-base-1.0 (and refiner) scheduler/scheduler_config.json */
static const char *SCHED_XL =
    "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", "
    "\"beta_start\": 0.00085, \"clip_sample\": false, \"interpolation_type\": \"linear\", \"num_train_timesteps\": 1000, "
    "\"prediction_type\": \"epsilon\", \"sample_max_value\": 1.0, \"set_alpha_to_one\": false, \"skip_prk_steps\": true, "
    "\"steps_offset\": 1, \"timestep_spacing\": \"leading\", \"trained_betas\": null, \"use_karras_sigmas\": false}\n";
/* stabilityai/sdxl-turbo scheduler/scheduler_config.json */
static const char *SCHED_TURBO =
    "{\"_class_name\": \"EulerAncestralDiscreteScheduler\", \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", "
    "\"beta_start\": 0.00085, \"clip_sample\": false, \"interpolation_type\": \"linear\", \"num_train_timesteps\": 1000, "
    "\"prediction_type\": \"epsilon\", \"sample_max_value\": 1.0, \"set_alpha_to_one\": false, \"skip_prk_steps\": true, "
    "\"steps_offset\": 1, \"timestep_spacing\": \"trailing\", \"trained_betas\": null, \"use_karras_sigmas\": false}\n";

static void build_sd15(const char *out) {
    char root[PATH_MAX], p[PATH_MAX];
    file_at(root, sizeof root, out, "sd15");
    mkdirs(root);
    file_at(p, sizeof p, root, "model_index.json");
    write_text(p, "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.27.2\",\n"
                  " \"scheduler\": [\"diffusers\", \"PNDMScheduler\"],\n"
                  " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                  " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                  " \"unet\": " UNET_COMP ", \"unet_cd\": " UNET_COMP ",\n"
                  " \"vae\": [\"diffusers\", \"AutoencoderKL\"],\n"
                  " \"safety_checker\": [null, null], \"feature_extractor\": [null, null]}\n");
    tokenizer(root, "tokenizer");
    scheduler(root, SCHED_SD15);
    component(root, "text_encoder", "manifest-sd15", "text_encoder", "text_encoder.json", "model.safetensors", g_seed);
    component(root, "vae", "manifest-sd15", "vae", "vae.json", "diffusion_pytorch_model.safetensors", g_seed);
    component(root, "unet", "manifest-sd15", "unet", "unet.json", "diffusion_pytorch_model.safetensors", g_seed);
    component(root, "unet_cd", "manifest-sd15", "unet", "unet.json", "diffusion_pytorch_model.safetensors",
              mix64(g_seed + 1));
    /* LCM-LoRA SD1.5 (kohya names; alpha 1) */
    char q[PATH_MAX];
    pathf(q, sizeof q, "%s/manifest-lcm-lora-sd15/lora.json", g_fix);
    cJSON *man = load_json(q);
    file_at(p, sizeof p, out, "lcm-lora-sdv1-5.safetensors");
    write_random(p, man, mix64(g_seed + 2), 1.0f);
    cJSON_Delete(man);
}

/* model_index.json of an SDXL folder: base (with the unet_lcm component), refiner or turbo. */
static void xl_index(const char *root, int refiner, int turbo) {
    char idx[2048], p[PATH_MAX];
    if (refiner)
        snprintf(idx, sizeof idx,
                 "{\"_class_name\": \"StableDiffusionXLImg2ImgPipeline\", \"_diffusers_version\": \"0.27.2\",\n"
                 " \"force_zeros_for_empty_prompt\": false, \"requires_aesthetics_score\": true,\n"
                 " \"scheduler\": [\"diffusers\", \"EulerDiscreteScheduler\"],\n"
                 " \"text_encoder\": [null, null], \"tokenizer\": [null, null],\n"
                 " \"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"],\n"
                 " \"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"],\n"
                 " \"unet\": " UNET_COMP ", \"vae\": [\"diffusers\", \"AutoencoderKL\"]}\n");
    else
        snprintf(idx, sizeof idx,
                 "{\"_class_name\": \"StableDiffusionXLPipeline\", \"_diffusers_version\": \"0.27.2\",\n"
                 " \"force_zeros_for_empty_prompt\": true,\n"
                 " \"scheduler\": [\"diffusers\", \"%s\"],\n"
                 " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                 " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                 " \"text_encoder_2\": [\"transformers\", \"CLIPTextModelWithProjection\"],\n"
                 " \"tokenizer_2\": [\"transformers\", \"CLIPTokenizer\"],\n"
                 " \"unet\": " UNET_COMP "%s,\n"
                 " \"vae\": [\"diffusers\", \"AutoencoderKL\"]}\n",
                 turbo ? "EulerAncestralDiscreteScheduler" : "EulerDiscreteScheduler",
                 turbo ? "" : ", \"unet_lcm\": " UNET_COMP);
    file_at(p, sizeof p, root, "model_index.json");
    write_text(p, idx);
}

static void link_component(const char *from_root, const char *to_root, const char *name) {
    char a[PATH_MAX], b[PATH_MAX];
    file_at(a, sizeof a, from_root, name);
    file_at(b, sizeof b, to_root, name);
    link_to(a, b);
}

static void build_sdxl(const char *out) {
    char base[PATH_MAX], turbo[PATH_MAX], ref[PATH_MAX];
    file_at(base, sizeof base, out, "sdxl-base");
    mkdirs(base);
    xl_index(base, 0, 0);
    tokenizer(base, "tokenizer");
    tokenizer(base, "tokenizer_2");
    scheduler(base, SCHED_XL);
    component(base, "text_encoder", "manifest-sdxl-base", "text_encoder", "text_encoder.json", "model.safetensors",
              g_seed);
    component(base, "text_encoder_2", "manifest-sdxl-base", "text_encoder_2", "text_encoder_2.json",
              "model.safetensors", g_seed);
    component(base, "vae", "manifest-sdxl-base", "vae", "vae.json", "diffusion_pytorch_model.safetensors", g_seed);
    component(base, "unet", "manifest-sdxl-base", "unet", "unet.json", "diffusion_pytorch_model.safetensors", g_seed);
    component(base, "unet_lcm", "manifest-lcm-sdxl", "unet", "unet.json", "diffusion_pytorch_model.safetensors",
              mix64(g_seed + 3));

    file_at(turbo, sizeof turbo, out, "sdxl-turbo"); /* the base's components, SDXL-Turbo's scheduler */
    mkdirs(turbo);
    xl_index(turbo, 0, 1);
    const char *shared[] = {"text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "vae"};
    for (int i = 0; i < 6; i++) link_component(base, turbo, shared[i]);
    scheduler(turbo, SCHED_TURBO);

    file_at(ref, sizeof ref, out, "sdxl-refiner");
    mkdirs(ref);
    xl_index(ref, 1, 0);
    link_component(base, ref, "text_encoder_2");
    link_component(base, ref, "tokenizer_2");
    link_component(base, ref, "vae");
    scheduler(ref, SCHED_XL);
    component(ref, "unet", "manifest-sdxl-refiner", "unet", "unet.json", "diffusion_pytorch_model.safetensors",
              mix64(g_seed + 4));
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: manifest_model FIXTURES OUT [--seed N] [--only sd15,sdxl]\n");
        return 2;
    }
    g_fix = argv[1];
    const char *out = argv[2], *only = "sd15,sdxl";
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seed") == 0) g_seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--only") == 0) only = argv[i + 1];
        else die("unknown option %s", argv[i]);
    }
    mkdirs(out);
    if (strstr(only, "sd15")) build_sd15(out);
    if (strstr(only, "sdxl")) build_sdxl(out);
    return 0;
}
