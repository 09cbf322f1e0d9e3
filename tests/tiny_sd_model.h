/* Test helper (header-only): assembles a tiny but complete diffusers Stable Diffusion folder from the
 * shared fixtures in a temporary folder, with symlinks (nothing is copied into the repository):
 *   model_index.json, unet -> <fixtures>/<unet_fixture>/model, vae -> vae-sd-tiny/model,
 *   text_encoder -> clip-text-tiny/model (hidden 32 = the UNets' cross_attention_dim),
 *   tokenizer/{vocab.json, merges.txt} -> tokenizer-clip, scheduler/scheduler_config.json (SD1.5 values,
 *   the given _class_name). */
#ifndef TDM_TESTS_TINY_SD_MODEL_H
#define TDM_TESTS_TINY_SD_MODEL_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tandem.h"
#include "test_util.h"

static void tiny_sd_must(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "setup failed: %s\n", what);
        exit(1);
    }
}

/* snprintf that fails the test setup on truncation. */
#define TINY_SD_PATH(buf, ...) tiny_sd_must(snprintf(buf, sizeof buf, __VA_ARGS__) < (int)sizeof buf, "path too long")

static void tiny_sd_link(const char *fixture_rel, const char *link_path) {
    char src[PATH_MAX], target[PATH_MAX];
    TINY_SD_PATH(src, "%s/%s", tdm_test_fixtures(), fixture_rel);
    tiny_sd_must(realpath(src, target) != NULL, src);
    tiny_sd_must(symlink(target, link_path) == 0, link_path);
}

static void tiny_sd_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    tiny_sd_must(f != NULL, path);
    fputs(text, f);
    fclose(f);
}

/* 1 when the fixtures a tiny SD model is made of are present (and unet-lcm-tiny when with_lcm). */
static inline int tiny_sd_fixtures_present(int with_lcm) {
    static const char *const needed[] = {"unet-sd15-tiny", "vae-sd-tiny", "clip-text-tiny", "tokenizer-clip",
                                         "unet-lcm-tiny"};
    const size_t n = sizeof needed / sizeof needed[0] - (with_lcm ? 0 : 1);
    for (size_t i = 0; i < n; i++)
        if (!tdm_test_fixture(needed[i])) return 0;
    return 1;
}

/* Engines with 1 and 2 threads (outputs must not depend on the thread count); a failure is a CHECK failure. */
static inline void tiny_sd_engines(tdm_engine **e1, tdm_engine **e2) {
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    tdm_status st = {0};
    ep.n_threads = 1;
    CHECK_MSG(tdm_engine_create(&ep, e1, &st) == TDM_OK, "%s", st.msg);
    ep.n_threads = 2;
    CHECK_MSG(tdm_engine_create(&ep, e2, &st) == TDM_OK, "%s", st.msg);
}

/* <tmp>/<name>/: model_index.json, unet -> fixture, vae, text_encoder, tokenizer/{vocab,merges}, scheduler/. */
static void tiny_sd_make_model(const char *dir, const char *unet_fixture, const char *scheduler_class) {
    char p[PATH_MAX], q[PATH_MAX];
    tiny_sd_must(mkdir(dir, 0755) == 0, dir);
    TINY_SD_PATH(p, "%s/model_index.json", dir);
    tiny_sd_write(p, "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.27.2\",\n"
                  " \"scheduler\": [\"diffusers\", \"EulerDiscreteScheduler\"],\n"
                  " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                  " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                  " \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
                  " \"vae\": [\"diffusers\", \"AutoencoderKL\"],\n"
                  " \"safety_checker\": [null, null], \"feature_extractor\": [null, null]}\n");
    TINY_SD_PATH(p, "%s/unet", dir);
    TINY_SD_PATH(q, "%s/model", unet_fixture);
    tiny_sd_link(q, p);
    TINY_SD_PATH(p, "%s/vae", dir);
    tiny_sd_link("vae-sd-tiny/model", p);
    TINY_SD_PATH(p, "%s/text_encoder", dir);
    tiny_sd_link("clip-text-tiny/model", p);
    TINY_SD_PATH(p, "%s/tokenizer", dir);
    tiny_sd_must(mkdir(p, 0755) == 0, p);
    TINY_SD_PATH(p, "%s/tokenizer/vocab.json", dir);
    tiny_sd_link("tokenizer-clip/vocab.json", p);
    TINY_SD_PATH(p, "%s/tokenizer/merges.txt", dir);
    tiny_sd_link("tokenizer-clip/merges.txt", p);
    TINY_SD_PATH(p, "%s/scheduler", dir);
    tiny_sd_must(mkdir(p, 0755) == 0, p);
    TINY_SD_PATH(p, "%s/scheduler/scheduler_config.json", dir);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"_class_name\": \"%s\", \"_diffusers_version\": \"0.27.2\", \"beta_start\": 0.00085,\n"
             " \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", \"num_train_timesteps\": 1000,\n"
             " \"prediction_type\": \"epsilon\", \"steps_offset\": 1, \"timestep_spacing\": \"leading\",\n"
             " \"clip_sample\": false, \"set_alpha_to_one\": false}\n",
             scheduler_class);
    tiny_sd_write(p, cfg);
}

#endif
