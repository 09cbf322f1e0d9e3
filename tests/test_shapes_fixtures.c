/* The shapes-world family through the engine:
 *  - every tests/fixtures/shapes-* folder (committed, written by tools/shapes/make_fixtures.py,
 *    make_sampler_fixture.py and export.py) through `tandem check` with 0 failures; a kind without a
 *    handler or a fixture that cannot run is a failure here;
 *  - the oracle's own WordPiece vocabulary (vocab.txt + [DEC] [ENC]) gives the fixture's input_ids;
 *  - the pad id of a tokenizer with its own vocabulary comes from that vocabulary (627 ids: 626);
 *  - a pipeline folder with a second UNet component (model_index.json "unet_student", as models/shapes)
 *    loads it through unet_component; teacher and student of one folder share the VAE; both generate. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "io/safetensors.h"
#include "models/bert_tokenizer.h"
#include "models/clip_text.h"
#include "models/clip_tokenizer.h"
#include "pipeline/adaptive.h"
#include "pipeline/check.h"
#include "pipeline/sd_model.h"
#include "tandem.h"
#include "test_util.h"

#define SHAPES_DIR "tests/fixtures"

static void print_line(void *user, const char *line) {
    (void)user;
    printf("  %s\n", line);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_all_fixtures(void) {
    DIR *d = opendir(SHAPES_DIR);
    CHECK_MSG(d != NULL, "%s: %s (run from the project root)", SHAPES_DIR, strerror(errno));
    if (!d) return;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (strncmp(e->d_name, "shapes-", 7) == 0) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    CHECK_MSG(n >= 7, "only %d shapes-* fixtures found", n);
    int total_pass = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", SHAPES_DIR, names[i]);
        int n_pass = 0, n_fail = 0;
        tdm_status st = {0};
        tdm_code rc = tdm_check_fixture(dir, 1, print_line, NULL, &n_pass, &n_fail, &st);
        CHECK_MSG(rc == TDM_OK, "%s: %s", names[i], st.msg);
        CHECK_MSG(n_fail == 0, "%s: %d failures", names[i], n_fail);
        CHECK_MSG(n_pass > 0, "%s: nothing was checked", names[i]);
        printf("%s: %d passed, %d failed%s\n", names[i], n_pass, n_fail, rc ? " (did not run)" : "");
        total_pass += n_pass;
        bad += rc != TDM_OK || n_fail > 0;
        free(names[i]);
    }
    printf("shapes fixtures: %d folders, %d checks passed, %d folders failing\n", n, total_pass, bad);
}

/* The oracle's tokenizer: its own vocab.txt, special ids as tools/shapes/wordpiece.py writes them
 * ([PAD] 0 [UNK] 1 [CLS] 2 [SEP] 3, [DEC] [ENC] appended), and the fixture's input_ids. */
static void test_oracle_tokenizer(void) {
    const char *dir = SHAPES_DIR "/shapes-oracle";
    tdm_bert_tokenizer *tok = NULL;
    tdm_status st = {0};
    tdm_code rc = tdm_bert_tokenizer_load_imagereward(&tok, SHAPES_DIR "/shapes-oracle/model/vocab.txt", &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc) return;
    cJSON *cfg = NULL;
    CHECK(tdm_json_load(SHAPES_DIR "/shapes-oracle/model/config.json", &cfg, &st) == TDM_OK);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer"),
                                                          "added_special_tokens");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(added, "[DEC]");
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(added, "[ENC]");
    CHECK(cJSON_IsNumber(dec) && cJSON_IsNumber(enc));
    if (cJSON_IsNumber(dec) && cJSON_IsNumber(enc)) {
        CHECK_MSG(tdm_bert_token_id(tok, "[DEC]") == dec->valueint, "[DEC] %d, config %d",
                  tdm_bert_token_id(tok, "[DEC]"), dec->valueint);
        CHECK(tdm_bert_token_id(tok, "[ENC]") == enc->valueint);
        CHECK(tdm_bert_size(tok) == enc->valueint + 1); /* vocab_size = lines + 2 */
    }
    cJSON_Delete(cfg);
    CHECK(tdm_bert_pad_id(tok) == 0 && tdm_bert_unk_id(tok) == 1 && tdm_bert_cls_id(tok) == 2 &&
          tdm_bert_sep_id(tok) == 3);
    /* the prompts named in the fixture's case.json inputs.input_ids */
    static const char *const prompts[2] = {"a red circle on the left",
                                           "a large yellow triangle above a blue square, purple"};
    tdm_safetensors io;
    char path[512];
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    rc = tdm_st_open(&io, path, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (!rc) {
        const tdm_st_entry *ie = tdm_st_find(&io, "input_ids"), *me = tdm_st_find(&io, "attention_mask");
        CHECK(ie && me && ie->ndim == 2 && ie->shape[0] == 2 && ie->shape[1] == 35);
        if (ie && me && ie->ndim == 2 && ie->shape[0] == 2 && ie->shape[1] == 35) {
            tdm_tensor ti = tdm_st_view(&io, ie), tm = tdm_st_view(&io, me);
            for (int p = 0; p < 2; p++) {
                int32_t ids[35], mask[35];
                CHECK(tdm_bert_encode(tok, prompts[p], strlen(prompts[p]), 35, ids, mask, NULL, NULL, &st) == TDM_OK);
                int same = 1;
                for (int i = 0; i < 35; i++)
                    same &= ids[i] == (int32_t)tdm_tensor_get(&ti, p * 35 + i) &&
                            mask[i] == (int32_t)tdm_tensor_get(&tm, p * 35 + i);
                CHECK_MSG(same, "prompt %d: WordPiece ids differ from the fixture's input_ids", p);
            }
            printf("oracle WordPiece: 2/2 prompts give the fixture's input_ids and attention_mask\n");
        }
        tdm_st_close(&io);
    }
    tdm_bert_tokenizer_free(tok);
}

/* A full CLIPModel folder as a text encoder: the mapper drops the vision half by name; text_projection
 * only when asked; the plain CLIPTextModel mapper still refuses the extra tensors. */
static void test_clip_model_folder(void) {
    const char *dir = SHAPES_DIR "/shapes-clip-text-full/model";
    char cfg_path[512], w_path[512];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(w_path, sizeof w_path, "%s/model.safetensors", dir);
    tdm_clip_text_config cfg;
    tdm_status st = {0};
    CHECK_MSG(tdm_clip_text_config_load(cfg_path, &cfg, &st) == TDM_OK, "%s", st.msg);
    CHECK(cfg.is_clip_model && cfg.clip_model_projection_dim == 24 && cfg.hidden_size == 32 && cfg.eos_token_id == 599);
    CHECK(tdm_clip_text_mapper_for(&cfg) == tdm_clip_text_clipmodel_mapper);
    tdm_clip_text *m = NULL;
    tdm_code rc = tdm_clip_text_load_dir(&m, dir, &st);
    CHECK_MSG(rc == TDM_OK && m && m->has_projection && m->cfg.projection_dim == 24, "%s", st.msg);
    /* the CLIPModel's projection width is the top-level projection_dim, whatever text_config says */
    cJSON *j = cJSON_Parse("{\"text_config\": {\"hidden_size\": 32, \"num_attention_heads\": 4, \"vocab_size\": 600,"
                           " \"intermediate_size\": 64, \"num_hidden_layers\": 2, \"projection_dim\": 7},"
                           " \"projection_dim\": 24}");
    tdm_clip_text_config c2;
    CHECK(j && tdm_clip_text_config_from_json(j, "inline config", &c2, &st) == TDM_OK);
    cJSON_Delete(j);
    CHECK(c2.is_clip_model && c2.projection_dim == 7 && c2.clip_model_projection_dim == 24);
    tdm_clip_text_free(m);
    tdm_clip_model_map no_proj = {0};
    tdm_weights ws;
    rc = tdm_weights_open_file(&ws, "text encoder", w_path, "", tdm_clip_text_clipmodel_mapper, &no_proj, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (!rc) {
        rc = tdm_clip_text_load(&m, &cfg, &ws, &st);
        CHECK_MSG(rc == TDM_OK && !m->has_projection, "%s", st.msg);
        tdm_clip_text_free(m);
    }
    rc = tdm_weights_open_file(&ws, "text encoder", w_path, "", tdm_clip_text_hf_mapper, NULL, &st);
    if (!rc) {
        rc = tdm_clip_text_load(&m, &cfg, &ws, &st);
        CHECK_MSG(rc != TDM_OK && strstr(st.msg, "not used"), "%s", st.msg);
        if (!rc) tdm_clip_text_free(m);
    }
}

/* ---- files for a small pipeline folder ------------------------------------------------------------ */

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static int join(char *buf, size_t n, const char *a, const char *b) {
    int w = snprintf(buf, n, "%s/%s", a, b);
    return w >= 0 && (size_t)w < n;
}

/* A symlink dst -> the absolute path of src. */
static int link_abs(const char *src, const char *dst) {
    char *abs = realpath(src, NULL);
    if (!abs) return 0;
    int ok = symlink(abs, dst) == 0;
    free(abs);
    return ok;
}

/* A CLIP tokenizer folder with the shapes tokenizer's 512 byte tokens and its own bos/eos (512 / 513),
 * no merges: every id fits the 600-token text encoder of the wiring fixtures. */
static int write_small_tokenizer(const char *dir) {
    cJSON *full = NULL;
    tdm_status st;
    if (tdm_json_load(SHAPES_DIR "/shapes-tokenizer/vocab.json", &full, &st)) return 0;
    cJSON *v = cJSON_CreateObject();
    const cJSON *e;
    cJSON_ArrayForEach(e, full) {
        if (cJSON_IsNumber(e) && e->valueint < 512) cJSON_AddNumberToObject(v, e->string, e->valueint);
    }
    cJSON_AddNumberToObject(v, "<|startoftext|>", 512);
    cJSON_AddNumberToObject(v, "<|endoftext|>", 513);
    char *text = cJSON_PrintUnformatted(v);
    char p[1024];
    join(p, sizeof p, dir, "vocab.json");
    int ok = text && cJSON_GetArraySize(v) == 514 && write_text(p, text);
    free(text);
    cJSON_Delete(v);
    cJSON_Delete(full);
    join(p, sizeof p, dir, "merges.txt");
    ok = ok && write_text(p, "#version: 0.2\n");
    join(p, sizeof p, dir, "tokenizer_config.json");
    return ok && write_text(p, "{\"pad_token\": \"<|endoftext|>\", \"model_max_length\": 77}");
}

/* tmp/shapes-pipe: model_index.json with unet (teacher: the F32 wiring UNet) and unet_student (the same
 * weights in F16), the wiring text encoder and VAE, a DDIM scheduler as models/shapes ships. */
static int make_pipeline(char *root, size_t n) {
    snprintf(root, n, "%s/shapes-pipe", tdm_test_tmpdir());
    char p[1024];
    if (mkdir(root, 0755) && errno != EEXIST) return 0;
    join(p, sizeof p, root, "model_index.json");
    int ok = write_text(p, "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.27.2\","
                           " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],"
                           " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],"
                           " \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],"
                           " \"unet_student\": [\"diffusers\", \"UNet2DConditionModel\"],"
                           " \"vae\": [\"diffusers\", \"AutoencoderKL\"],"
                           " \"scheduler\": [\"diffusers\", \"DDIMScheduler\"],"
                           " \"safety_checker\": [null, null], \"feature_extractor\": [null, null]}");
    join(p, sizeof p, root, "unet");
    ok = ok && link_abs(SHAPES_DIR "/shapes-unet/model", p);
    join(p, sizeof p, root, "unet_student");
    ok = ok && link_abs(SHAPES_DIR "/shapes-unet/model-f16", p);
    join(p, sizeof p, root, "text_encoder");
    ok = ok && link_abs(SHAPES_DIR "/shapes-clip-text/model", p);
    join(p, sizeof p, root, "vae");
    ok = ok && link_abs(SHAPES_DIR "/shapes-vae/model", p);
    join(p, sizeof p, root, "scheduler");
    ok = ok && (mkdir(p, 0755) == 0 || errno == EEXIST);
    join(p, sizeof p, root, "scheduler/scheduler_config.json");
    ok = ok && write_text(p, "{\"_class_name\": \"DDIMScheduler\", \"beta_start\": 0.00085, \"beta_end\": 0.012,"
                             " \"beta_schedule\": \"scaled_linear\", \"clip_sample\": false,"
                             " \"set_alpha_to_one\": false,"
                             " \"steps_offset\": 1, \"timestep_spacing\": \"leading\", \"num_train_timesteps\": 1000,"
                             " \"prediction_type\": \"epsilon\"}");
    join(p, sizeof p, root, "tokenizer");
    ok = ok && (mkdir(p, 0755) == 0 || errno == EEXIST) && write_small_tokenizer(p);
    return ok;
}

/* Pad id from the vocabulary: the shapes tokenizer (627 ids) pads with its own <|endoftext|> = 626. */
static void test_pad_id_small_vocab(void) {
    char root[1024], p[1024];
    snprintf(root, sizeof root, "%s/tok-only", tdm_test_tmpdir());
    CHECK(mkdir(root, 0755) == 0 || errno == EEXIST);
    join(p, sizeof p, root, "model_index.json");
    CHECK(write_text(p, "{\"_class_name\": \"StableDiffusionPipeline\", \"tokenizer\": [\"transformers\", "
                        "\"CLIPTokenizer\"]}"));
    tdm_sd_load_opts o;
    tdm_sd_load_opts_init(&o);
    o.path = root;
    o.tokenizer_dir = SHAPES_DIR "/shapes-tokenizer";
    o.components = TDM_SD_TOKENIZER;
    tdm_sd_model *m = NULL;
    tdm_status st = {0};
    tdm_code rc = tdm_sd_model_load(&m, &o, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (rc) return;
    CHECK(tdm_clip_vocab_size(m->tokenizer) == 627);
    CHECK_MSG(m->pad_id == 626 && m->pad_id == tdm_clip_token_id(m->tokenizer, "<|endoftext|>"), "pad id %d",
              m->pad_id);
    tdm_clip_encode_opts eo;
    tdm_clip_encode_opts_init(&eo);
    eo.pad_id = m->pad_id;
    eo.truncate = 1;
    tdm_clip_windows w;
    rc = tdm_clip_encode_windows(m->tokenizer, "a small red circle on the left", &eo, &w, &st);
    CHECK_MSG(rc == TDM_OK, "%s", st.msg);
    if (!rc) {
        CHECK(w.ids[0] == 625 && w.ids[76] == 626);
        printf("shapes tokenizer: pad id %d (vocabulary of %d), window [%d ... %d]\n", m->pad_id,
               tdm_clip_vocab_size(m->tokenizer), w.ids[0], w.ids[76]);
        tdm_clip_windows_free(&w);
    }
    tdm_sd_model_free(m);
}

static int quiet_progress(void *user, tdm_stage stage, int step, int total) {
    (void)user, (void)stage, (void)step, (void)total;
    return 0;
}

static tdm_code gen(tdm_engine *e, const tdm_model *m, const char *sampler, int steps, float w, tdm_image *out,
                    tdm_generate_stats *stats, tdm_status *st) {
    tdm_generate_params gp;
    tdm_generate_params_init(&gp);
    gp.prompt = "a small red circle on the left";
    gp.steps = steps;
    gp.guidance_scale = w;
    gp.sampler = sampler;
    gp.seed = 7;
    gp.progress = quiet_progress;
    return tdm_generate(e, m, &gp, out, stats, st);
}

static void test_student_component(void) {
    char root[1024];
    if (!make_pipeline(root, sizeof root)) {
        CHECK_MSG(0, "could not build the test pipeline folder under %s", tdm_test_tmpdir());
        return;
    }
    /* tdm_sd_model level: components, the shared VAE, the UNet weights' origin */
    tdm_sd_load_opts o;
    tdm_sd_load_opts_init(&o);
    o.path = root;
    tdm_sd_model *teacher = NULL, *student = NULL;
    tdm_status st = {0};
    tdm_code rc = tdm_sd_model_load(&teacher, &o, &st);
    CHECK_MSG(rc == TDM_OK, "teacher: %s", st.msg);
    o.unet_component = "unet_student";
    rc = tdm_sd_model_load(&student, &o, &st);
    CHECK_MSG(rc == TDM_OK, "student: %s", st.msg);
    if (teacher && student) {
        CHECK(strcmp(teacher->unet_component, "unet") == 0 && strcmp(student->unet_component, "unet_student") == 0);
        CHECK(strstr(student->source, "unet_student") != NULL);
        CHECK(teacher->pad_id == 513 && student->pad_id == 513); /* the folder's own <|endoftext|> */
        char why[160];
        CHECK_MSG(tdm_vae_shared(teacher, student, why, sizeof why), "%s", why);
        printf("teacher + student from one folder: %s\n", why);
    }
    tdm_sd_model_free(teacher);
    tdm_sd_model_free(student);
    /* a missing component, and a component name on a single file */
    o.unet_component = "unet_missing";
    rc = tdm_sd_model_load(&student, &o, &st);
    CHECK_MSG(rc == TDM_ERR_MISSING && strstr(st.msg, "unet_missing"), "%d %s", (int)rc, st.msg);
    o.unet_component = "../unet";
    CHECK(tdm_sd_model_load(&student, &o, &st) == TDM_ERR_INVALID_ARG);
    o.path = SHAPES_DIR "/shapes-unet/model/diffusion_pytorch_model.safetensors";
    o.unet_component = "unet_student";
    CHECK(tdm_sd_model_load(&student, &o, &st) != TDM_OK);

    /* public API: generate with teacher (DDIM) and student (consistency, 4 steps, real CFG) */
    tdm_engine *e = NULL;
    tdm_engine_params ep;
    tdm_engine_params_init(&ep);
    ep.n_threads = 1;
    CHECK(tdm_engine_create(&ep, &e, &st) == TDM_OK);
    tdm_model_params mp;
    tdm_model_params_init(&mp);
    mp.path = root;
    tdm_model *mt = NULL, *ms = NULL;
    CHECK_MSG(tdm_model_load(&mp, &mt, &st) == TDM_OK, "%s", st.msg);
    mp.unet_component = "unet_student";
    CHECK_MSG(tdm_model_load(&mp, &ms, &st) == TDM_OK, "%s", st.msg);
    if (e && mt && ms) {
        tdm_image a = {0}, b = {0}, c = {0};
        tdm_generate_stats sa, sb, sc;
        rc = gen(e, mt, "ddim", 3, 5.0f, &a, &sa, &st);
        CHECK_MSG(rc == TDM_OK, "teacher: %s", st.msg);
        CHECK(rc || (a.width == 64 && a.height == 64 && sa.unet_calls == 3 && sa.unet_batch == 2));
        rc = gen(e, ms, "consistency", 4, 5.0f, &b, &sb, &st);
        if (rc == TDM_ERR_INVALID_ARG && strstr(st.msg, "unknown sampler")) {
            /* src/pipeline/generate.c lists its public sampler names; until "consistency" is added there the
             * student runs with DDIM here (the sampler itself is checked by shapes-consistency-sampler) */
            printf("NOTE: tdm_generate does not list the consistency sampler yet (%s); student run with ddim\n",
                   st.msg);
            rc = gen(e, ms, "ddim", 4, 5.0f, &b, &sb, &st);
            CHECK_MSG(rc == TDM_OK, "student: %s", st.msg);
        } else {
            CHECK_MSG(rc == TDM_OK, "student: %s", st.msg);
            CHECK(rc || (sb.steps_run == 4 && sb.unet_calls == 4 && sb.unet_batch == 2));
            rc = gen(e, ms, "consistency", 4, 5.0f, &c, &sc, &st); /* seeded re-noising: reproducible */
            CHECK(rc == TDM_OK && c.pixels && b.pixels && memcmp(b.pixels, c.pixels, (size_t)64 * 64 * 3) == 0);
            printf("student: consistency sampler, 4 steps, CFG 5: %d UNet calls of batch %d\n", sb.unet_calls,
                   sb.unet_batch);
        }
        tdm_image_free(&a);
        tdm_image_free(&b);
        tdm_image_free(&c);
    }
    tdm_model_free(mt);
    tdm_model_free(ms);
    tdm_engine_free(e);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_oracle_tokenizer();
    test_clip_model_folder();
    test_pad_id_small_vocab();
    test_student_component();
    test_all_fixtures();
    return tdm_test_result();
}
