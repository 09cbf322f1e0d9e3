/* Shapes world: sampling, splits, renderer, caption grammar round trip and parser errors, and the
 * checker's accuracy on clean, noisy and blurred renders (targets from issue 3: >= 99% of test-split
 * captions score 1.0 on their own image; >= 99% of one-attribute mismatches score below 1.0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "test_util.h"
#include "world/caption.h"
#include "world/checker.h"
#include "world/world.h"

#define W 64
#define N_CHECK 1200 /* test-split scenes for the accuracy figures */

static void test_sampling_and_splits(void) {
    tdm_world_scene a, b;
    tdm_world_scene_sample(7, 123, &a);
    tdm_world_scene_sample(7, 123, &b);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    int count[TDM_N_SPLITS] = {0}, held_in_test[3] = {0};
    int n_two = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        tdm_world_scene sc;
        tdm_world_scene_sample(1, (uint64_t)i, &sc);
        int sp = tdm_world_split(&sc);
        count[sp]++;
        n_two += sc.n_objects == 2;
        CHECK(tdm_colour_is_background(sc.background));
        for (int k = 0; k < sc.n_objects; k++) {
            const tdm_world_object *o = &sc.obj[k];
            CHECK(tdm_colour_is_object(o->colour) && o->colour != sc.background);
            CHECK(o->cx - o->extent >= 0.0f && o->cx + o->extent <= 1.0f);
            CHECK(o->cy - o->extent >= 0.0f && o->cy + o->extent <= 1.0f);
            if (tdm_world_pair_held_out(o->colour, o->shape)) {
                CHECK_MSG(sp == TDM_SPLIT_TEST, "held-out %s %s in split %s", tdm_colour_name(o->colour),
                          tdm_shape_name(o->shape), tdm_split_name(sp));
                held_in_test[o->shape]++;
            }
        }
        if (sc.n_objects == 2) {
            CHECK(sc.obj[0].colour != sc.obj[1].colour);
            /* facing edges at least 0.06 apart along the relation's axis */
            const tdm_world_object *p = &sc.obj[0], *q = &sc.obj[1];
            int horiz = sc.relation == TDM_REL_LEFT_OF || sc.relation == TDM_REL_RIGHT_OF;
            float d = horiz ? fabsf(p->cx - q->cx) : fabsf(p->cy - q->cy);
            CHECK(d >= p->extent + q->extent + 0.059f);
        }
    }
    printf("splits of %d scenes: train %.1f%%, val %.1f%%, test %.1f%%; two-object %.1f%%\n", n,
           100.0 * count[0] / n, 100.0 * count[1] / n, 100.0 * count[2] / n, 100.0 * n_two / n);
    CHECK(count[TDM_SPLIT_TRAIN] > n / 2 && count[TDM_SPLIT_VAL] > n / 20 && count[TDM_SPLIT_TEST] > n / 10);
    for (int s = 0; s < 3; s++) CHECK(held_in_test[s] > 0);
    tdm_status st = {0};
    for (int sp = 0; sp < TDM_N_SPLITS; sp++)
        for (int i = 0; i < 50; i++) {
            tdm_world_scene sc;
            CHECK(tdm_world_sample(3, sp, (uint64_t)i, &sc, &st) == TDM_OK);
            CHECK(tdm_world_split(&sc) == sp);
        }
    CHECK(tdm_world_sample(3, 5, 0, &a, &st) == TDM_ERR_INVALID_ARG);
}

static void test_render(void) {
    tdm_world_scene sc;
    memset(&sc, 0, sizeof sc);
    sc.background = TDM_WHITE;
    sc.n_objects = 1;
    sc.relation = TDM_ANY;
    sc.obj[0] = (tdm_world_object){TDM_SQUARE, TDM_RED, TDM_LARGE, TDM_POS_CENTRE, 0.5f, 0.5f, 0.25f};
    uint8_t rgb[W * W * 3], rgb2[W * W * 3], mask[W * W];
    tdm_status st = {0};
    CHECK(tdm_world_render(&sc, W, W, 4, rgb, mask, &st) == TDM_OK);
    /* a square [16, 48) x [16, 48) in pixels: exactly 32 * 32 mask pixels, pure red inside */
    int n_obj = 0;
    for (int i = 0; i < W * W; i++) n_obj += mask[i] == 1;
    CHECK_MSG(n_obj == 32 * 32, "mask pixels %d", n_obj);
    CHECK(rgb[(32 * W + 32) * 3] == 220 && rgb[(32 * W + 32) * 3 + 1] == 30);
    CHECK(rgb[0] == 245 && rgb[1] == 245 && rgb[2] == 245);
    /* anti-aliasing: a circle's edge has intermediate values */
    sc.obj[0].shape = TDM_CIRCLE;
    CHECK(tdm_world_render(&sc, W, W, 4, rgb, NULL, &st) == TDM_OK);
    int mixed = 0;
    for (int i = 0; i < W * W; i++) mixed += rgb[i * 3 + 1] > 30 && rgb[i * 3 + 1] < 245;
    CHECK_MSG(mixed > 40, "edge pixels %d", mixed);
    CHECK(tdm_world_render(&sc, W, W, 4, rgb2, NULL, &st) == TDM_OK);
    CHECK(memcmp(rgb, rgb2, sizeof rgb) == 0);
    CHECK(tdm_world_render(&sc, 4, W, 4, rgb, NULL, &st) == TDM_ERR_INVALID_ARG);
}

static void test_captions(void) {
    tdm_status st = {0};
    int n_ok = 0, n = 3000;
    char text[TDM_CAPTION_MAX];
    for (int i = 0; i < n; i++) {
        tdm_world_scene sc;
        tdm_world_query q, parsed;
        tdm_world_scene_sample(11, (uint64_t)i, &sc);
        if (tdm_world_caption(&sc, 11, (uint64_t)i, text, sizeof text, &q, &st) != TDM_OK) {
            CHECK_MSG(0, "caption %d: %s", i, st.msg);
            continue;
        }
        if (tdm_world_parse(text, &parsed, &st) != TDM_OK) {
            CHECK_MSG(0, "parse '%s': %s", text, st.msg);
            continue;
        }
        if (tdm_world_query_equal(&q, &parsed)) n_ok++;
        else CHECK_MSG(0, "round trip differs for '%s'", text);
        if (i < 6) printf("caption: %s\n", text);
    }
    printf("caption round trip: %d / %d\n", n_ok, n);

    /* paraphrases of one statement parse to the same query */
    const char *same[] = {
        "on a white background, a blue square above a large yellow triangle",
        "a large yellow triangle below a blue square on a white background",
        "There is a blue square above a large yellow triangle, white background.",
        "the large yellow triangle is below the blue square against a white background",
        "a blue square above a yellow triangle, large, with a white background",
    };
    tdm_world_query q0, qi;
    CHECK(tdm_world_parse(same[0], &q0, &st) == TDM_OK);
    CHECK(q0.n_objects == 2 && q0.relation == TDM_REL_ABOVE && q0.background == TDM_WHITE);
    CHECK(q0.obj[0].colour == TDM_BLUE && q0.obj[0].shape == TDM_SQUARE && q0.obj[0].size == TDM_ANY);
    CHECK(q0.obj[1].colour == TDM_YELLOW && q0.obj[1].shape == TDM_TRIANGLE && q0.obj[1].size == TDM_LARGE);
    for (size_t i = 1; i < sizeof same / sizeof same[0]; i++) {
        CHECK_MSG(tdm_world_parse(same[i], &qi, &st) == TDM_OK, "'%s': %s", same[i], st.msg);
        CHECK_MSG(tdm_world_query_equal(&q0, &qi), "'%s' differs", same[i]);
    }
    CHECK(tdm_world_parse("a red circle, small, at the left", &qi, &st) == TDM_OK);
    CHECK(qi.n_objects == 1 && qi.obj[0].size == TDM_SMALL && qi.obj[0].position == TDM_POS_LEFT);
    CHECK(tdm_world_parse("in the middle, a circle", &qi, &st) == TDM_OK);
    CHECK(qi.obj[0].colour == TDM_ANY && qi.obj[0].position == TDM_POS_CENTRE);

    /* errors name the word and its position */
    struct {
        const char *text, *needle;
    } bad[] = {
        {"a red banana on the left", "word 3 'banana'"},
        {"a red circle on the", "ends after word 5"},
        {"a red on the left", "word 3 'on': expected a shape"},
        {"a red circle on the left blue", "word 7 'blue'"},
        {"a red circle 42", "character 14"},
        {"", "empty"},
        {"a small red circle large", "word 5 'large'"},
        {"there a red circle", "word 2 'a': expected 'is'"},
        {"a red circle is", "ends after word 4"},
        {"a red circle to the top of a blue square", "word 6 'top': expected 'left' or 'right'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tdm_status e = {0};
        tdm_code rc = tdm_world_parse(bad[i].text, &qi, &e);
        CHECK_MSG(rc == TDM_ERR_INVALID_ARG && strstr(e.msg, bad[i].needle), "'%s' -> rc %d '%s'", bad[i].text, rc,
                  e.msg);
    }
}

/* 3x3 binomial blur [1 2 1]^2 / 16, clamped borders, in place. */
static void blur(uint8_t *rgb, int w, int h) {
    uint8_t *src = malloc((size_t)w * h * 3);
    memcpy(src, rgb, (size_t)w * h * 3);
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++)
            for (int c = 0; c < 3; c++) {
                int acc = 0;
                for (int di = -1; di <= 1; di++)
                    for (int dj = -1; dj <= 1; dj++) {
                        int ii = i + di < 0 ? 0 : i + di >= h ? h - 1 : i + di;
                        int jj = j + dj < 0 ? 0 : j + dj >= w ? w - 1 : j + dj;
                        acc += (2 - (di < 0 ? -di : di)) * (2 - (dj < 0 ? -dj : dj)) * src[(ii * w + jj) * 3 + c];
                    }
                rgb[(i * w + j) * 3 + c] = (uint8_t)((acc + 8) / 16);
            }
    free(src);
}

static void add_noise(uint8_t *rgb, int n, float sigma, uint64_t seed) {
    float *z = malloc((size_t)n * sizeof *z);
    tdm_randn(z, (size_t)n, seed, 99, 0);
    for (int i = 0; i < n; i++) {
        float v = rgb[i] + sigma * z[i];
        rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
    }
    free(z);
}

enum { MUT_COLOUR, MUT_SHAPE, MUT_SIZE, MUT_POSITION, MUT_RELATION, MUT_BACKGROUND, N_MUT };
static const char *const k_mut_names[N_MUT] = {"colour", "shape", "size", "position", "relation", "background"};

/* Changes one stated attribute of kind `kind` (object chosen by r); 0 when the caption states none. */
static int mutate(tdm_world_query *q, int kind, tdm_world_rng *r) {
    int k = q->n_objects == 2 ? tdm_world_rng_int(r, 2) : 0;
    tdm_world_obj_query *o = &q->obj[k];
    switch (kind) {
    case MUT_COLOUR: {
        int c;
        do c = tdm_world_rng_int(r, TDM_N_COLOURS);
        while (c == o->colour || !tdm_colour_is_object(c) || c == q->background);
        o->colour = c;
        return 1;
    }
    case MUT_SHAPE: o->shape = (o->shape + 1 + tdm_world_rng_int(r, TDM_N_SHAPES - 1)) % TDM_N_SHAPES; return 1;
    case MUT_SIZE:
        if (o->size == TDM_ANY) {
            if (q->n_objects == 2 && q->obj[1 - k].size != TDM_ANY) o = &q->obj[1 - k];
            else return 0;
        }
        o->size = 1 - o->size;
        return 1;
    case MUT_POSITION:
        if (q->n_objects != 1) return 0;
        o->position = (o->position + 1 + tdm_world_rng_int(r, TDM_N_POSITIONS - 1)) % TDM_N_POSITIONS;
        return 1;
    case MUT_RELATION:
        if (q->n_objects != 2) return 0;
        q->relation = (q->relation + 1 + tdm_world_rng_int(r, TDM_N_RELATIONS - 1)) % TDM_N_RELATIONS;
        return 1;
    default: {
        if (q->background == TDM_ANY) return 0;
        static const int bgs[3] = {TDM_WHITE, TDM_BLACK, TDM_GRAY};
        int b;
        do b = bgs[tdm_world_rng_int(r, 3)];
        while (b == q->background);
        q->background = b;
        return 1;
    }
    }
}

typedef struct accuracy {
    int n_own, n_own_perfect;
    int n_mut[N_MUT], n_mut_below[N_MUT];
    double score_sum;
} accuracy;

/* variant 0: clean; 1: Gaussian noise sigma 8; 2: blur; 3: blur + noise sigma 6 */
static void measure(int variant, accuracy *acc, int verbose) {
    memset(acc, 0, sizeof *acc);
    tdm_status st = {0};
    uint8_t rgb[W * W * 3];
    int shown = 0;
    for (int i = 0; i < N_CHECK; i++) {
        tdm_world_scene sc;
        tdm_world_query q;
        char text[TDM_CAPTION_MAX];
        if (tdm_world_sample(2024, TDM_SPLIT_TEST, (uint64_t)i, &sc, &st) ||
            tdm_world_render(&sc, W, W, 4, rgb, NULL, &st) ||
            tdm_world_caption(&sc, 2024, (uint64_t)i, text, sizeof text, &q, &st)) {
            CHECK_MSG(0, "scene %d: %s", i, st.msg);
            return;
        }
        if (variant == 1) add_noise(rgb, W * W * 3, 8.0f, (uint64_t)i);
        if (variant >= 2) blur(rgb, W, W);
        if (variant == 3) add_noise(rgb, W * W * 3, 6.0f, (uint64_t)i);
        tdm_world_query parsed;
        if (tdm_world_parse(text, &parsed, &st)) {
            CHECK_MSG(0, "parse '%s': %s", text, st.msg);
            continue;
        }
        tdm_world_analysis an;
        if (tdm_world_analyze(rgb, W, W, &an, &st)) {
            CHECK_MSG(0, "analyze: %s", st.msg);
            continue;
        }
        tdm_world_check_result res;
        tdm_world_score(&parsed, &an, &res);
        acc->n_own++;
        acc->score_sum += res.score;
        if (res.score == 1.0f) acc->n_own_perfect++;
        else if (verbose && shown++ < 8) {
            printf("  variant %d miss: '%s' score %.3f:", variant, text, res.score);
            for (int a = 0; a < res.n_attrs; a++)
                if (!res.attr[a].ok)
                    printf(" %s want %s got %s;", res.attr[a].name, res.attr[a].expected, res.attr[a].found);
            for (int d = 0; d < an.n_detections; d++)
                printf(" [det %s %s fill %.2f top %.2f corner %.2f ext %.3f]", tdm_colour_name(an.det[d].colour),
                       tdm_shape_name(an.det[d].shape), an.det[d].fill, an.det[d].top_share, an.det[d].corner_fill,
                       an.det[d].extent);
            printf("\n");
        }
        tdm_world_rng r = {2024, (uint64_t)i | (1ull << 61), 0};
        for (int kind = 0; kind < N_MUT; kind++) {
            tdm_world_query mq = q;
            if (!mutate(&mq, kind, &r)) continue;
            char mtext[TDM_CAPTION_MAX];
            tdm_world_query mparsed;
            if (tdm_world_caption_text(&mq, &r, mtext, sizeof mtext, &st) || tdm_world_parse(mtext, &mparsed, &st)) {
                CHECK_MSG(0, "mutated caption: %s", st.msg);
                continue;
            }
            tdm_world_score(&mparsed, &an, &res);
            acc->n_mut[kind]++;
            if (res.score < 1.0f) acc->n_mut_below[kind]++;
            else if (verbose && shown++ < 8)
                printf("  variant %d mismatch scored 1: '%s' for '%s'\n", variant, mtext, text);
        }
    }
}

static void test_checker(void) {
    static const char *const names[4] = {"clean", "noise sigma 8", "blur 3x3", "blur + noise sigma 6"};
    for (int v = 0; v < 4; v++) {
        accuracy acc;
        measure(v, &acc, 1);
        int n_mut = 0, n_below = 0;
        for (int k = 0; k < N_MUT; k++) n_mut += acc.n_mut[k], n_below += acc.n_mut_below[k];
        double own = 100.0 * acc.n_own_perfect / (acc.n_own ? acc.n_own : 1);
        double mism = 100.0 * n_below / (n_mut ? n_mut : 1);
        printf("checker %-22s own caption 1.0: %d/%d = %.2f%% (mean %.4f); mismatches < 1.0: %d/%d = %.2f%% (",
               names[v], acc.n_own_perfect, acc.n_own, own, acc.score_sum / (acc.n_own ? acc.n_own : 1), n_below,
               n_mut, mism);
        for (int k = 0; k < N_MUT; k++)
            printf("%s%s %d/%d", k ? ", " : "", k_mut_names[k], acc.n_mut_below[k], acc.n_mut[k]);
        printf(")\n");
        CHECK(acc.n_own >= 1000);
        double need = v == 0 ? 99.0 : 97.0;
        CHECK_MSG(own >= need, "%s: own-caption accuracy %.2f%% < %.0f%%", names[v], own, need);
        CHECK_MSG(mism >= need, "%s: mismatch detection %.2f%% < %.0f%%", names[v], mism, need);
    }
}

static void test_checker_details(void) {
    /* other image sizes: relative coordinates */
    tdm_world_scene sc;
    tdm_status st = {0};
    int ok = 0, n = 100;
    uint8_t *rgb = malloc(128 * 128 * 3);
    for (int i = 0; i < n; i++) {
        tdm_world_query q;
        char text[TDM_CAPTION_MAX];
        tdm_world_scene_sample(5, (uint64_t)i, &sc);
        CHECK(tdm_world_render(&sc, 128, 128, 3, rgb, NULL, &st) == TDM_OK);
        CHECK(tdm_world_caption(&sc, 5, (uint64_t)i, text, sizeof text, &q, &st) == TDM_OK);
        tdm_world_check_result res;
        CHECK(tdm_world_check(&q, rgb, 128, 128, &res, &st) == TDM_OK);
        ok += res.score == 1.0f;
    }
    printf("checker at 128x128: %d / %d score 1.0\n", ok, n);
    CHECK(ok >= n - 1);
    /* an empty image: objects absent, score 0 */
    memset(rgb, 245, 64 * 64 * 3);
    tdm_world_query q;
    CHECK(tdm_world_parse("a red circle on the left", &q, &st) == TDM_OK);
    tdm_world_check_result res;
    CHECK(tdm_world_check(&q, rgb, 64, 64, &res, &st) == TDM_OK);
    CHECK(res.score == 0.0f && !res.all_present && res.analysis.background == TDM_WHITE);
    CHECK(tdm_world_check(&q, rgb, 4, 64, &res, &st) == TDM_ERR_INVALID_ARG);
    free(rgb);
}

int main(void) {
    test_sampling_and_splits();
    test_render();
    test_captions();
    test_checker();
    test_checker_details();
    return tdm_test_result();
}
