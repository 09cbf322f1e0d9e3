/* End-to-end generation through the public API on a tiny SD model assembled in a temporary folder
 * from the fixtures (unet-sd15-tiny / unet-lcm-tiny, vae-sd-tiny, clip-text-tiny, tokenizer-clip):
 * output size, bit-identical images on 1 and 2 threads, seed sensitivity, guidance <= 1 skipping the
 * unconditional pass, cancellation, img2img, long prompts, every sampler, errors, PNG metadata. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tandem.h"
#include "test_util.h"
#include "tiny_sd_model.h"

typedef struct counter {
    int calls[4];
    int last_step[4];
    int cancel_at_denoise; /* cancel when denoise step reaches this (0 = never) */
} counter;

static int on_progress(void *user, tdm_stage stage, int step, int total) {
    counter *c = user;
    c->calls[stage]++;
    c->last_step[stage] = step;
    (void)total;
    return c->cancel_at_denoise && stage == TDM_STAGE_DENOISE && step >= c->cancel_at_denoise;
}

static tdm_code gen(tdm_engine *e, const tdm_model *m, const tdm_generate_params *p, tdm_image *out,
                    tdm_generate_stats *stats) {
    tdm_status st = {0};
    tdm_code rc = tdm_generate(e, m, p, out, stats, &st);
    if (rc) fprintf(stderr, "generate: %s\n", st.msg);
    return rc;
}

static int same_image(const tdm_image *a, const tdm_image *b) {
    return a->pixels && b->pixels && a->width == b->width && a->height == b->height &&
           memcmp(a->pixels, b->pixels, (size_t)a->width * a->height * 3) == 0;
}

static void test_txt2img(tdm_engine *e1, tdm_engine *e2, const tdm_model *m) {
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "a photograph of an astronaut riding a horse";
    p.negative_prompt = "blurry, low quality";
    p.steps = 3;
    p.sampler = "euler_a"; /* stochastic: exercises the sampler noise stream */
    p.seed = 42;
    p.width = p.height = 64;
    counter cnt = {0};
    p.progress = on_progress;
    p.progress_user = &cnt;
    tdm_image a = {0}, b = {0}, c = {0};
    tdm_generate_stats s1, s2;
    CHECK(gen(e1, m, &p, &a, &s1) == TDM_OK);
    CHECK(a.width == 64 && a.height == 64 && a.channels == 3);
    CHECK(s1.unet_calls == 3 && s1.unet_batch == 2 && s1.steps_run == 3 && s1.prompt_chunks == 1);
    CHECK(cnt.calls[TDM_STAGE_DENOISE] == 4 && cnt.last_step[TDM_STAGE_DENOISE] == 3);
    CHECK(cnt.calls[TDM_STAGE_ENCODE_TEXT] == 2 && cnt.calls[TDM_STAGE_DECODE] == 2);
    CHECK(cnt.calls[TDM_STAGE_ENCODE_IMAGE] == 0);
    /* not a flat image */
    int varied = 0;
    for (int i = 3; a.pixels && i < 64 * 64 * 3; i++) varied |= a.pixels[i] != a.pixels[0];
    CHECK(varied);

    CHECK(gen(e2, m, &p, &b, &s2) == TDM_OK);
    CHECK_MSG(same_image(&a, &b), "1-thread and 2-thread images differ");

    p.seed = 43;
    CHECK(gen(e1, m, &p, &c, NULL) == TDM_OK);
    CHECK_MSG(c.pixels && a.pixels && memcmp(a.pixels, c.pixels, 64 * 64 * 3) != 0, "seeds 42 and 43 agree");
    tdm_image_free(&c);

    /* Guidance 1: the unconditional pass is skipped (batch 1, one call per step). */
    p.seed = 42;
    p.guidance_scale = 1.0f;
    CHECK(gen(e1, m, &p, &c, &s1) == TDM_OK);
    CHECK(s1.unet_batch == 1 && s1.unet_calls == 3);
    CHECK(c.pixels && a.pixels && memcmp(a.pixels, c.pixels, 64 * 64 * 3) != 0);
    tdm_image_free(&c);

    /* Non-square, deterministic sampler, default guidance. */
    p.guidance_scale = -1.0f;
    p.sampler = "ddim";
    p.width = 128;
    p.height = 64;
    CHECK(gen(e2, m, &p, &c, &s1) == TDM_OK);
    CHECK(c.width == 128 && c.height == 64 && s1.unet_batch == 2);
    tdm_image_free(&c);

    /* Sizes that are multiples of 8 but not of 64: odd latents (9x5) go through the UNet the way
     * diffusers handles them (downsampling to ceil sizes, upsampling to each skip's size). */
    p.width = 72;
    p.height = 40;
    CHECK(gen(e1, m, &p, &c, &s1) == TDM_OK);
    CHECK(c.width == 72 && c.height == 40);
    tdm_image_free(&c);

    /* Cancel at denoise step 2. */
    p.width = p.height = 64;
    cnt.cancel_at_denoise = 2;
    tdm_status st = {0};
    CHECK(tdm_generate(e1, m, &p, &c, &s1, &st) == TDM_ERR_CANCELLED);
    CHECK(c.pixels == NULL && s1.unet_calls == 2);
    CHECK(strstr(st.msg, "cancel") != NULL);
    cnt.cancel_at_denoise = 0;

    /* Long prompt: 2 windows; short negative padded to 2. Emphasis off also runs. */
    p.prompt = "masterpiece, best quality, ultra-detailed, 8k, photorealistic, a breathtaking landscape of "
               "towering snow-capped mountains reflected in a crystal clear alpine lake at sunrise, golden hour "
               "lighting, volumetric fog, pine trees, wildflowers in the foreground, dramatic clouds, wide angle "
               "lens, sharp focus, national geographic, award winning photograph, hdr, vivid colors, (trending on "
               "artstation:1.2), by ansel adams and albert bierstadt";
    CHECK(gen(e1, m, &p, &c, &s1) == TDM_OK);
    CHECK(s1.prompt_chunks == 2);
    tdm_image_free(&c);
    p.emphasis = 0;
    CHECK(gen(e1, m, &p, &c, &s1) == TDM_OK);
    tdm_image_free(&c);

    /* Emphasis changes the conditioning. */
    p.prompt = "a (red:1.5) cat";
    p.emphasis = 1;
    p.steps = 2;
    tdm_image d = {0};
    CHECK(gen(e1, m, &p, &c, NULL) == TDM_OK);
    p.prompt = "a red cat";
    CHECK(gen(e1, m, &p, &d, NULL) == TDM_OK);
    CHECK(c.pixels && d.pixels && memcmp(c.pixels, d.pixels, 64 * 64 * 3) != 0);
    tdm_image_free(&c);
    tdm_image_free(&d);

    /* Every sampler runs, and is thread-count independent. */
    int n_samplers = 0;
    const char *const *names = tdm_sampler_names(&n_samplers);
    CHECK(n_samplers == 9 && names[n_samplers] == NULL);
    for (int i = 0; i < n_samplers; i++) {
        p.sampler = names[i];
        p.steps = 3;
        p.eta = strcmp(names[i], "ddim") == 0 ? 0.5f : 0.0f;
        int ok1 = gen(e1, m, &p, &c, &s1) == TDM_OK, ok2 = gen(e2, m, &p, &d, NULL) == TDM_OK;
        CHECK_MSG(ok1 && ok2, "sampler %s failed", names[i]);
        CHECK_MSG(same_image(&c, &d), "sampler %s: 1 vs 2 threads differ", names[i]);
        tdm_image_free(&c);
        tdm_image_free(&d);
    }
    p.eta = 0.0f;

    /* Metadata text and PNG save. */
    p.sampler = "euler_a";
    p.prompt = "a photograph of an astronaut riding a horse";
    p.steps = 3;
    p.seed = 42;
    p.guidance_scale = 7.5f;
    char text[1024];
    int len = tdm_format_parameters(m, &p, text, sizeof text);
    CHECK(len > 0 && (size_t)len < sizeof text);
    CHECK_MSG(strncmp(text, "a photograph of an astronaut riding a horse\nNegative prompt: blurry, low quality\n"
                            "Steps: 3, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: ",
                      strlen("a photograph of an astronaut riding a horse\nNegative prompt: blurry, low quality\n"
                             "Steps: 3, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: ")) == 0,
              "got: %s", text);
    CHECK(tdm_format_parameters(m, &p, NULL, 0) == len);
    char small[10];
    CHECK(tdm_format_parameters(m, &p, small, sizeof small) == len && strlen(small) == 9);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/out.png", tdm_test_tmpdir());
    CHECK(tdm_image_save_png(path, &a, text, &st) == TDM_OK);
    char *back = NULL;
    CHECK(tdm_image_read_parameters(path, &back, &st) == TDM_OK && back && strcmp(back, text) == 0);
    tdm_free(back);
    tdm_image loaded = {0};
    CHECK(tdm_image_load(path, &loaded, &st) == TDM_OK && same_image(&loaded, &a));
    tdm_image_free(&loaded);

    tdm_image_free(&a);
    tdm_image_free(&b);
}

static void test_img2img(tdm_engine *e1, tdm_engine *e2, const tdm_model *m) {
    tdm_status st = {0};
    tdm_image init = {0};
    init.width = 80;
    init.height = 72;
    init.channels = 3;
    init.pixels = malloc(80 * 72 * 3);
    for (int i = 0; i < 80 * 72 * 3; i++) init.pixels[i] = (uint8_t)((i * 7) ^ (i / 240));
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "a cat";
    p.init_image = &init;
    p.steps = 4;
    p.strength = 0.5f;
    p.seed = 7;
    p.sampler = "euler_a";
    p.width = p.height = 64;
    counter cnt = {0};
    p.progress = on_progress;
    p.progress_user = &cnt;
    tdm_image a = {0}, b = {0};
    tdm_generate_stats s;
    CHECK(gen(e1, m, &p, &a, &s) == TDM_OK);
    CHECK(a.width == 64 && a.height == 64);
    CHECK_MSG(s.steps_run == 2 && s.unet_calls == 2, "steps_run %d", s.steps_run); /* int(4 * 0.5) = 2 */
    CHECK(cnt.calls[TDM_STAGE_ENCODE_IMAGE] == 2);
    CHECK(gen(e2, m, &p, &b, NULL) == TDM_OK);
    CHECK_MSG(same_image(&a, &b), "img2img: 1-thread and 2-thread images differ");
    tdm_image_free(&b);
    char text[1024];
    CHECK(tdm_format_parameters(m, &p, text, sizeof text) > 0 && strstr(text, ", Denoising strength: 0.5"));

    /* strength 1 and the default size from the init image (80x72: already multiples of 8) */
    p.strength = 1.0f;
    p.width = p.height = 0;
    CHECK(gen(e1, m, &p, &b, &s) == TDM_OK);
    CHECK(b.width == 80 && b.height == 72 && s.steps_run == 4);
    tdm_image_free(&b);

    /* a strength too small to keep any step */
    p.strength = 0.1f;
    CHECK(tdm_generate(e1, m, &p, &b, NULL, &st) != TDM_OK);
    CHECK(b.pixels == NULL);

    /* corrupt init image file */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/corrupt.png", tdm_test_tmpdir());
    tiny_sd_write(path, "\x89PNG\r\n\x1a\n garbage");
    tdm_image bad;
    CHECK(tdm_image_load(path, &bad, &st) == TDM_ERR_FORMAT && bad.pixels == NULL);
    /* bad init image struct */
    tdm_image empty = {0};
    p.init_image = &empty;
    p.strength = 0.5f;
    CHECK(tdm_generate(e1, m, &p, &b, NULL, &st) == TDM_ERR_INVALID_ARG);
    tdm_image_free(&a);
    free(init.pixels);
}

static void test_bad_params(tdm_engine *e, const tdm_model *m) {
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "x";
    p.steps = 2;
    tdm_status st = {0};
    tdm_image out;
    p.width = 100; /* not a multiple of 8 */
    p.height = 64;
    CHECK(tdm_generate(e, m, &p, &out, NULL, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "multiple") != NULL);
    p.width = 64;
    p.steps = 5000;
    CHECK(tdm_generate(e, m, &p, &out, NULL, &st) == TDM_ERR_INVALID_ARG);
    p.steps = 2;
    p.sampler = "pndm";
    CHECK(tdm_generate(e, m, &p, &out, NULL, &st) == TDM_ERR_INVALID_ARG);
    CHECK(strstr(st.msg, "pndm") != NULL);
    p.sampler = NULL;
    p.guidance_scale = 1e9f;
    CHECK(tdm_generate(e, m, &p, &out, NULL, &st) == TDM_ERR_INVALID_ARG);
    p.guidance_scale = -1.0f;
    p.prompt = NULL;
    CHECK(tdm_generate(e, m, &p, &out, NULL, &st) == TDM_ERR_INVALID_ARG);
    p.prompt = "x";
    p.clip_skip = 4; /* clip-text-tiny has 3 layers */
    CHECK(tdm_generate(e, m, &p, &out, NULL, &st) == TDM_ERR_INVALID_ARG);
    CHECK(out.pixels == NULL);
    p.clip_skip = 2;
    CHECK(tdm_generate(e, m, &p, &out, NULL, &st) == TDM_OK);
    tdm_image_free(&out);
    CHECK(tdm_generate(NULL, m, &p, &out, NULL, &st) == TDM_ERR_INVALID_ARG);
}

static void test_lcm(tdm_engine *e1, tdm_engine *e2, const char *dir) {
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = dir;
    tdm_model *m = NULL;
    tdm_status st = {0};
    CHECK_MSG(tdm_model_load(&mp, &m, &st) == TDM_OK, "%s", st.msg);
    if (!m) return;
    tdm_model_info info;
    tdm_model_get_info(m, &info);
    CHECK(info.is_lcm && info.default_steps == 4 && info.default_guidance == 8.5f);
    CHECK(strcmp(info.default_sampler, "lcm") == 0);
    tdm_generate_params p;
    tdm_generate_params_init(&p);
    p.prompt = "a cat";
    p.negative_prompt = "ignored by LCM";
    p.width = p.height = 64;
    p.seed = 3;
    tdm_image a = {0}, b = {0};
    tdm_generate_stats s;
    CHECK(gen(e1, m, &p, &a, &s) == TDM_OK);
    CHECK(s.unet_batch == 1 && s.unet_calls == 4);
    CHECK(gen(e2, m, &p, &b, NULL) == TDM_OK);
    CHECK(same_image(&a, &b));
    tdm_image_free(&b);
    p.guidance_scale = 2.0f; /* changes the w embedding */
    CHECK(gen(e1, m, &p, &b, NULL) == TDM_OK);
    CHECK(a.pixels && b.pixels && memcmp(a.pixels, b.pixels, 64 * 64 * 3) != 0);
    char text[1024];
    CHECK(tdm_format_parameters(m, &p, text, sizeof text) > 0);
    CHECK(strstr(text, "Negative prompt") == NULL && strstr(text, "Sampler: LCM, CFG scale: 2.0"));
    tdm_image_free(&a);
    tdm_image_free(&b);
    tdm_model_free(m);
}

int main(void) {
    if (!tiny_sd_fixtures_present(1)) tdm_test_skip("fixtures for the tiny SD model are absent");
    char dir[PATH_MAX], lcm_dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/tiny-sd", tdm_test_tmpdir());
    snprintf(lcm_dir, sizeof lcm_dir, "%s/tiny-lcm", tdm_test_tmpdir());
    tiny_sd_make_model(dir, "unet-sd15-tiny", "EulerDiscreteScheduler");
    tiny_sd_make_model(lcm_dir, "unet-lcm-tiny", "LCMScheduler");

    tdm_status st = {0};
    tdm_engine *e1 = NULL, *e2 = NULL;
    tiny_sd_engines(&e1, &e2);
    CHECK(tdm_engine_threads(e1) == 1 && tdm_engine_threads(e2) == 2);

    /* missing model */
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    tdm_model *m = NULL;
    char missing[PATH_MAX];
    snprintf(missing, sizeof missing, "%s/no-such-model", tdm_test_tmpdir());
    mp.path = missing;
    CHECK(tdm_model_load(&mp, &m, &st) != TDM_OK && m == NULL);
    CHECK(strstr(st.msg, "no-such-model") != NULL);
    mp.path = NULL;
    CHECK(tdm_model_load(&mp, &m, &st) == TDM_ERR_INVALID_ARG);

    mp.path = dir;
    tdm_code lrc = tdm_model_load(&mp, &m, &st);
    if (lrc == TDM_ERR_UNSUPPORTED && strstr(st.msg, "cross_attention_dim 32")) {
        printf("SKIP: the model loader refuses the tiny fixture model (%s)\n", st.msg);
        tdm_engine_free(e1);
        tdm_engine_free(e2);
        return 77;
    }
    CHECK_MSG(lrc == TDM_OK, "%s", st.msg);
    if (m) {
        tdm_model_info info;
        tdm_model_get_info(m, &info);
        CHECK(!info.is_lcm && info.default_steps == 20 && strcmp(info.default_sampler, "euler") == 0);
        CHECK(strcmp(info.name, "tiny-sd") == 0);
        CHECK(info.default_width == 128 && info.default_height == 128); /* sample_size 16 x 8 */
        test_txt2img(e1, e2, m);
        test_img2img(e1, e2, m);
        test_bad_params(e1, m);
        tdm_model_free(m);
    }
    test_lcm(e1, e2, lcm_dir);
    tdm_engine_free(e1);
    tdm_engine_free(e2);
    return tdm_test_result();
}
