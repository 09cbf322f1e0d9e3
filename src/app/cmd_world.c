/* `tandem world sample|captions` (the shapes-world dataset) and `tandem score --checker` (its
 * ground-truth checker). docs/WORLD.md describes the world, the caption grammar and the score. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app/args.h"
#include "app/commands_world.h"
#include "tandem.h"
#include "world/caption.h"
#include "world/checker.h"
#include "world/world.h"

/* ---- JSON helpers ------------------------------------------------------------------------------ */

static double round4(double v) { return (double)lround(v * 1e4) / 1e4; }

static void add_name(cJSON *o, const char *key, int value, const char *(*name)(int)) {
    if (value == TDM_ANY) cJSON_AddNullToObject(o, key);
    else cJSON_AddStringToObject(o, key, name(value));
}

/* The attributes a scene object and a detected object share, as JSON. */
static cJSON *object_json(int shape, int colour, int size, int position, double cx, double cy, double extent) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "shape", tdm_shape_name(shape));
    cJSON_AddStringToObject(j, "colour", tdm_colour_name(colour));
    cJSON_AddStringToObject(j, "size", tdm_size_name(size));
    cJSON_AddStringToObject(j, "position", tdm_position_name(position));
    cJSON_AddNumberToObject(j, "cx", round4(cx));
    cJSON_AddNumberToObject(j, "cy", round4(cy));
    cJSON_AddNumberToObject(j, "extent", round4(extent));
    return j;
}

static cJSON *scene_json(const tdm_world_scene *sc) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "background", tdm_colour_name(sc->background));
    cJSON *objs = cJSON_AddArrayToObject(o, "objects");
    for (int i = 0; i < sc->n_objects; i++) {
        const tdm_world_object *ob = &sc->obj[i];
        cJSON_AddItemToArray(objs, object_json(ob->shape, ob->colour, ob->size, ob->position, ob->cx, ob->cy,
                                               ob->extent));
    }
    add_name(o, "relation", sc->n_objects == 2 ? sc->relation : TDM_ANY, tdm_relation_name);
    return o;
}

static cJSON *query_json(const tdm_world_query *q) {
    cJSON *o = cJSON_CreateObject();
    cJSON *objs = cJSON_AddArrayToObject(o, "objects");
    for (int i = 0; i < q->n_objects; i++) {
        cJSON *j = cJSON_CreateObject();
        add_name(j, "shape", q->obj[i].shape, tdm_shape_name);
        add_name(j, "colour", q->obj[i].colour, tdm_colour_name);
        add_name(j, "size", q->obj[i].size, tdm_size_name);
        add_name(j, "position", q->obj[i].position, tdm_position_name);
        cJSON_AddItemToArray(objs, j);
    }
    add_name(o, "relation", q->n_objects == 2 ? q->relation : TDM_ANY, tdm_relation_name);
    add_name(o, "background", q->background, tdm_colour_name);
    return o;
}

/* ---- tandem world ------------------------------------------------------------------------------ */

typedef struct world_opts {
    int split, n, size, supersample, masks;
    uint64_t seed, start;
    const char *out;
} world_opts;

static void world_help(void) {
    printf("usage: tandem world sample --split S --n N --out DIR [options]\n"
           "       tandem world captions --split S --n N [options]\n\n"
           "The shapes world (docs/WORLD.md): 64x64 scenes of one or two flat shapes with captions.\n"
           "  sample     writes N images DIR/NNNNNN.png and DIR/captions.jsonl (one JSON object a line:\n"
           "             file, caption, split, seed, index, held_out_pair, scene, stated)\n"
           "  captions   prints N captions, one a line (for tokenizer training)\n\n"
           "options:\n"
           "  --split S        train, val or test (required)\n"
           "  --n N            number of samples, 1..10000000 (required)\n"
           "  --seed S         world seed, 0..2^64-1 (default 0)\n"
           "  --start I        first sample index (default 0): sample i is a pure function of (seed, split, i)\n"
           "  --out DIR        output folder, created if missing (sample)\n"
           "  --size PX        image side, 16..1024 (default 64)\n"
           "  --supersample K  anti-aliasing samples per pixel side, 1..16 (default 4)\n"
           "  --masks          also write DIR/NNNNNN_mask.png: object id per pixel (0 background,\n"
           "                   1 first object, 2 second) in all three channels\n");
}

/* mkdir -p */
static int make_dirs(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        buf[i] = c;
    }
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) ? 0 : -1;
}

static int world_sample(const world_opts *o) {
    if (make_dirs(o->out) != 0) {
        fprintf(stderr, "tandem world: cannot create the folder '%s': %s\n", o->out, strerror(errno));
        return 1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/captions.jsonl", o->out);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "tandem world: cannot write '%s': %s\n", path, strerror(errno));
        return 1;
    }
    size_t px = (size_t)o->size * o->size;
    uint8_t *rgb = malloc(px * 3), *mask = malloc(px), *mask_rgb = malloc(px * 3);
    int rc = 0;
    if (!rgb || !mask || !mask_rgb) {
        fprintf(stderr, "tandem world: out of memory\n");
        rc = 1;
    }
    for (int i = 0; i < o->n && rc == 0; i++) {
        uint64_t index = o->start + (uint64_t)i;
        tdm_status st = {0};
        tdm_world_scene sc;
        tdm_world_query q;
        char caption[TDM_CAPTION_MAX], file[64], mask_file[64];
        if (tdm_world_sample(o->seed, o->split, index, &sc, &st) ||
            tdm_world_render(&sc, o->size, o->size, o->supersample, rgb, mask, &st) ||
            tdm_world_caption(&sc, o->seed, index, caption, sizeof caption, &q, &st)) {
            fprintf(stderr, "tandem world: sample %llu: %s\n", (unsigned long long)index, st.msg);
            rc = 1;
            break;
        }
        snprintf(file, sizeof file, "%06llu.png", (unsigned long long)index);
        snprintf(path, sizeof path, "%s/%s", o->out, file);
        tdm_image img = {o->size, o->size, 3, rgb};
        if (tdm_image_save_png(path, &img, caption, &st)) {
            fprintf(stderr, "tandem world: %s\n", st.msg);
            rc = 1;
            break;
        }
        if (o->masks) {
            for (size_t p = 0; p < px; p++) mask_rgb[p * 3] = mask_rgb[p * 3 + 1] = mask_rgb[p * 3 + 2] = mask[p];
            snprintf(mask_file, sizeof mask_file, "%06llu_mask.png", (unsigned long long)index);
            snprintf(path, sizeof path, "%s/%s", o->out, mask_file);
            tdm_image mimg = {o->size, o->size, 3, mask_rgb};
            if (tdm_image_save_png(path, &mimg, NULL, &st)) {
                fprintf(stderr, "tandem world: %s\n", st.msg);
                rc = 1;
                break;
            }
        }
        int held = 0;
        for (int k = 0; k < sc.n_objects; k++) held |= tdm_world_pair_held_out(sc.obj[k].colour, sc.obj[k].shape);
        cJSON *line = cJSON_CreateObject();
        cJSON_AddStringToObject(line, "file", file);
        if (o->masks) cJSON_AddStringToObject(line, "mask", mask_file);
        cJSON_AddStringToObject(line, "caption", caption);
        cJSON_AddStringToObject(line, "split", tdm_split_name(o->split));
        char seed_s[32];
        snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)o->seed);
        cJSON_AddRawToObject(line, "seed", seed_s); /* raw digits: a 64-bit seed does not fit a double */
        cJSON_AddNumberToObject(line, "index", (double)index);
        cJSON_AddBoolToObject(line, "held_out_pair", held);
        cJSON_AddItemToObject(line, "scene", scene_json(&sc));
        cJSON_AddItemToObject(line, "stated", query_json(&q));
        char *text = cJSON_PrintUnformatted(line);
        cJSON_Delete(line);
        if (!text || fprintf(f, "%s\n", text) < 0) {
            fprintf(stderr, "tandem world: cannot write %s/captions.jsonl\n", o->out);
            rc = 1;
        }
        cJSON_free(text);
    }
    if (fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "tandem world: cannot write %s/captions.jsonl\n", o->out);
        rc = 1;
    }
    free(rgb);
    free(mask);
    free(mask_rgb);
    if (rc == 0) printf("wrote %d %s samples to %s\n", o->n, tdm_split_name(o->split), o->out);
    return rc;
}

static int world_captions(const world_opts *o) {
    for (int i = 0; i < o->n; i++) {
        uint64_t index = o->start + (uint64_t)i;
        tdm_status st = {0};
        tdm_world_scene sc;
        char caption[TDM_CAPTION_MAX];
        if (tdm_world_sample(o->seed, o->split, index, &sc, &st) ||
            tdm_world_caption(&sc, o->seed, index, caption, sizeof caption, NULL, &st)) {
            fprintf(stderr, "tandem world: sample %llu: %s\n", (unsigned long long)index, st.msg);
            return 1;
        }
        printf("%s\n", caption);
    }
    return 0;
}

int tdm_cmd_world(int argc, char **argv) {
    const char *cmd = "world";
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        world_help();
        return argc < 1 ? 2 : 0;
    }
    const char *action = argv[0];
    if (strcmp(action, "sample") != 0 && strcmp(action, "captions") != 0) {
        fprintf(stderr, "tandem world: unknown action '%s' (sample or captions; see tandem world --help)\n", action);
        return 2;
    }
    world_opts o = {.split = -1, .n = -1, .size = 64, .supersample = 4, .masks = 0, .seed = 0, .start = 0, .out = NULL};
    static const char *const o_split[] = {"--split", NULL}, *const o_n[] = {"--n", NULL},
                             *const o_seed[] = {"--seed", NULL}, *const o_start[] = {"--start", NULL},
                             *const o_out[] = {"--out", NULL}, *const o_size[] = {"--size", NULL},
                             *const o_ss[] = {"--supersample", NULL};
    for (int i = 1; i < argc; i++) {
        int err = 0, dummy = 0;
        const char *v;
        if ((v = tdm_arg_value(cmd, argc, argv, &i, o_split, &err))) {
            o.split = tdm_split_from_name(v);
            if (o.split < 0) {
                fprintf(stderr, "tandem world: --split: '%s' is not a split (train, val or test)\n", v);
                return 2;
            }
        } else if (!err && (v = tdm_arg_value(cmd, argc, argv, &i, o_n, &err))) {
            if (!tdm_arg_int(cmd, "--n", v, 1, 10000000, &o.n)) return 2;
        } else if (!err && (v = tdm_arg_value(cmd, argc, argv, &i, o_seed, &err))) {
            if (!tdm_arg_seed(cmd, "--seed", v, &o.seed, &dummy)) return 2;
            if (dummy) {
                fprintf(stderr, "tandem world: --seed: the world needs an explicit seed (0..2^64-1)\n");
                return 2;
            }
        } else if (!err && (v = tdm_arg_value(cmd, argc, argv, &i, o_start, &err))) {
            if (!tdm_arg_seed(cmd, "--start", v, &o.start, &dummy) || dummy) return 2;
        } else if (!err && (v = tdm_arg_value(cmd, argc, argv, &i, o_out, &err))) {
            o.out = v;
        } else if (!err && (v = tdm_arg_value(cmd, argc, argv, &i, o_size, &err))) {
            if (!tdm_arg_int(cmd, "--size", v, 16, 1024, &o.size)) return 2;
        } else if (!err && (v = tdm_arg_value(cmd, argc, argv, &i, o_ss, &err))) {
            if (!tdm_arg_int(cmd, "--supersample", v, 1, 16, &o.supersample)) return 2;
        } else if (!err && strcmp(argv[i], "--masks") == 0) {
            o.masks = 1;
        } else if (!err && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            world_help();
            return 0;
        } else if (!err) {
            fprintf(stderr, "tandem world: unknown option '%s' (see tandem world --help)\n", argv[i]);
            return 2;
        }
        if (err) return 2;
    }
    if (o.split < 0) {
        fprintf(stderr, "tandem world: --split is required (train, val or test)\n");
        return 2;
    }
    if (o.n < 0) {
        fprintf(stderr, "tandem world: --n is required\n");
        return 2;
    }
    if (o.start > (1ull << 40)) {
        fprintf(stderr, "tandem world: --start: at most 2^40\n");
        return 2;
    }
    if (strcmp(action, "captions") == 0) return world_captions(&o);
    if (!o.out) {
        fprintf(stderr, "tandem world sample: --out DIR is required\n");
        return 2;
    }
    return world_sample(&o);
}

/* ---- tandem score ------------------------------------------------------------------------------ */

static void score_help(void) {
    printf("usage: tandem score --checker --prompt TEXT --image FILE [--json]\n\n"
           "Scores an image against a caption of the shapes-world grammar with the ground-truth checker\n"
           "(docs/WORLD.md): segments the image, measures each object's colour, shape, size, position or\n"
           "relation and the background, and prints the score in [0, 1] with per-attribute results.\n"
           "Score = 0 when an object of the caption is missing, else the share of stated attributes\n"
           "(and the object count) that the image satisfies.\n\n"
           "options:\n"
           "  --checker        use the ground-truth checker (the only scorer so far; required)\n"
           "  --prompt TEXT    caption of the shapes-world grammar\n"
           "  --image FILE     PNG or JPEG, any size (relative coordinates)\n"
           "  --json           print one JSON object instead of text\n");
}

static cJSON *detection_json(const tdm_world_detection *d) {
    cJSON *j = object_json(d->shape, d->colour, d->size, d->position, d->cx, d->cy, d->extent);
    cJSON_AddNumberToObject(j, "fill", round4(d->fill));
    cJSON_AddNumberToObject(j, "top_share", round4(d->top_share));
    cJSON_AddNumberToObject(j, "corner_fill", round4(d->corner_fill));
    cJSON_AddNumberToObject(j, "area_px", d->area);
    return j;
}

int tdm_cmd_score(int argc, char **argv) {
    const char *cmd = "score", *prompt = NULL, *image = NULL;
    int checker = 0, json = 0;
    static const char *const o_prompt[] = {"--prompt", NULL}, *const o_image[] = {"--image", NULL};
    for (int i = 0; i < argc; i++) {
        int err = 0;
        const char *v;
        if ((v = tdm_arg_value(cmd, argc, argv, &i, o_prompt, &err))) prompt = v;
        else if (!err && (v = tdm_arg_value(cmd, argc, argv, &i, o_image, &err))) image = v;
        else if (!err && strcmp(argv[i], "--checker") == 0) checker = 1;
        else if (!err && strcmp(argv[i], "--json") == 0) json = 1;
        else if (!err && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            score_help();
            return 0;
        } else if (!err) {
            fprintf(stderr, "tandem score: unknown option '%s' (see tandem score --help)\n", argv[i]);
            return 2;
        }
        if (err) return 2;
    }
    if (!checker) {
        fprintf(stderr, "tandem score: choose a scorer: --checker (see tandem score --help)\n");
        return 2;
    }
    if (!prompt || !image) {
        fprintf(stderr, "tandem score: --prompt TEXT and --image FILE are required\n");
        return 2;
    }
    tdm_status st = {0};
    tdm_world_query q;
    if (tdm_world_parse(prompt, &q, &st)) {
        fprintf(stderr, "tandem score: %s\n", st.msg);
        return 1;
    }
    tdm_image img = {0};
    if (tdm_image_load(image, &img, &st)) {
        fprintf(stderr, "tandem score: %s\n", st.msg);
        return 1;
    }
    tdm_world_check_result res;
    tdm_code rc = tdm_world_check(&q, img.pixels, img.width, img.height, &res, &st);
    tdm_image_free(&img);
    if (rc) {
        fprintf(stderr, "tandem score: %s: %s\n", image, st.msg);
        return 1;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", prompt);
        cJSON_AddStringToObject(o, "image", image);
        cJSON_AddNumberToObject(o, "score", round4(res.score));
        cJSON_AddNumberToObject(o, "satisfied", res.n_satisfied);
        cJSON_AddNumberToObject(o, "stated", res.n_stated);
        cJSON_AddBoolToObject(o, "all_present", res.all_present);
        cJSON *attrs = cJSON_AddArrayToObject(o, "attributes");
        for (int a = 0; a < res.n_attrs; a++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "name", res.attr[a].name);
            cJSON_AddStringToObject(j, "expected", res.attr[a].expected);
            cJSON_AddStringToObject(j, "found", res.attr[a].found);
            cJSON_AddBoolToObject(j, "ok", res.attr[a].ok);
            cJSON_AddItemToArray(attrs, j);
        }
        cJSON_AddStringToObject(o, "background", tdm_colour_name(res.analysis.background));
        cJSON *dets = cJSON_AddArrayToObject(o, "detections");
        for (int d = 0; d < res.analysis.n_detections; d++)
            cJSON_AddItemToArray(dets, detection_json(&res.analysis.det[d]));
        char *text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!text) {
            fprintf(stderr, "tandem score: out of memory\n");
            return 1;
        }
        printf("%s\n", text);
        cJSON_free(text);
        return 0;
    }
    printf("score %.4f (%d of %d stated attributes%s)\n", res.score, res.n_satisfied, res.n_stated,
           res.all_present ? "" : "; an object is missing, so the score is 0");
    printf("  %-18s %-16s %-16s %s\n", "attribute", "expected", "found", "ok");
    for (int a = 0; a < res.n_attrs; a++)
        printf("  %-18s %-16s %-16s %s\n", res.attr[a].name, res.attr[a].expected, res.attr[a].found,
               res.attr[a].ok ? "yes" : "NO");
    return 0;
}
