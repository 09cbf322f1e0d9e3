/* Shapes world checker: scoring a parsed caption against an analysed image (formula in checker.h and
 * docs/WORLD.md). The segmentation is in checker_segment.c. */
#include "world/checker.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- scoring ----------------------------------------------------------------------------------- */

int tdm_world_relation_of(const tdm_world_detection *a, const tdm_world_detection *b) {
    float dx = b->cx - a->cx, dy = b->cy - a->cy;
    if (fabsf(dx) >= fabsf(dy)) return dx > 0 ? TDM_REL_LEFT_OF : TDM_REL_RIGHT_OF;
    return dy > 0 ? TDM_REL_ABOVE : TDM_REL_BELOW;
}

/* Attributes of caption object qo that detection d satisfies; *stated counts the stated ones. */
static int object_hits(const tdm_world_obj_query *qo, const tdm_world_detection *d, int *stated) {
    int hits = 0, n = 0;
    if (qo->colour != TDM_ANY) n++, hits += d->colour == qo->colour;
    if (qo->shape != TDM_ANY) n++, hits += d->shape == qo->shape;
    if (qo->size != TDM_ANY) n++, hits += d->size == qo->size;
    if (qo->position != TDM_ANY) n++, hits += d->position == qo->position;
    if (stated) *stated = n;
    return hits;
}

static void add_attr(tdm_world_check_result *res, const char *name, const char *expected, const char *found, int ok,
                     int counted) {
    if (res->n_attrs >= TDM_WORLD_MAX_ATTRS) return;
    tdm_world_attr_result *a = &res->attr[res->n_attrs++];
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->expected, sizeof a->expected, "%s", expected);
    snprintf(a->found, sizeof a->found, "%s", found);
    a->ok = ok;
    if (counted) {
        res->n_stated++;
        res->n_satisfied += ok != 0;
    }
}

void tdm_world_score(const tdm_world_query *q, const tdm_world_analysis *an, tdm_world_check_result *res) {
    memset(res, 0, sizeof *res);
    res->analysis = *an;
    int nq = q->n_objects < 1 ? 1 : q->n_objects > 2 ? 2 : q->n_objects, nd = an->n_detections;
    /* best injective assignment (ties: the first found, i.e. larger detections first) */
    int best[2] = {-1, -1}, best_hits = -1;
    if (nq == 1) {
        for (int a = 0; a < nd; a++) {
            int hits = object_hits(&q->obj[0], &an->det[a], NULL);
            if (hits > best_hits) best_hits = hits, best[0] = a;
        }
    } else {
        for (int a = 0; a < nd; a++)
            for (int b = 0; b < nd; b++) {
                if (a == b) continue;
                int hits = object_hits(&q->obj[0], &an->det[a], NULL) + object_hits(&q->obj[1], &an->det[b], NULL);
                if (q->relation != TDM_ANY) hits += tdm_world_relation_of(&an->det[a], &an->det[b]) == q->relation;
                if (hits > best_hits) best_hits = hits, best[0] = a, best[1] = b;
            }
        if (nd == 1) { /* only one object: match it to the caption object it fits best */
            int h0 = object_hits(&q->obj[0], &an->det[0], NULL), h1 = object_hits(&q->obj[1], &an->det[0], NULL);
            best[h1 > h0 ? 1 : 0] = 0;
        }
    }
    res->all_present = 1;
    for (int i = 0; i < nq; i++) {
        const tdm_world_obj_query *qo = &q->obj[i];
        int m = best[i];
        const tdm_world_detection *d = m >= 0 ? &an->det[m] : NULL;
        res->match[i] = m;
        char name[24];
        snprintf(name, sizeof name, "object%c.present", (char)('1' + i));
        add_attr(res, name, "yes", d ? "yes" : "no", d != NULL, 0);
        if (!d) res->all_present = 0;
        struct {
            const char *what;
            int want, got;
            const char *(*str)(int);
        } fields[4] = {
            {"colour", qo->colour, d ? d->colour : TDM_ANY, tdm_colour_name},
            {"shape", qo->shape, d ? d->shape : TDM_ANY, tdm_shape_name},
            {"size", qo->size, d ? d->size : TDM_ANY, tdm_size_name},
            {"position", qo->position, d ? d->position : TDM_ANY, tdm_position_name},
        };
        for (int f = 0; f < 4; f++) {
            if (fields[f].want == TDM_ANY) continue;
            snprintf(name, sizeof name, "object%c.%s", (char)('1' + i), fields[f].what);
            add_attr(res, name, fields[f].str(fields[f].want), d ? fields[f].str(fields[f].got) : "none",
                     d && fields[f].got == fields[f].want, 1);
        }
    }
    if (nq == 2 && q->relation != TDM_ANY) {
        int got = best[0] >= 0 && best[1] >= 0 ? tdm_world_relation_of(&an->det[best[0]], &an->det[best[1]]) : TDM_ANY;
        add_attr(res, "relation", tdm_relation_name(q->relation), got == TDM_ANY ? "none" : tdm_relation_name(got),
                 got == q->relation, 1);
    }
    if (q->background != TDM_ANY)
        add_attr(res, "background", tdm_colour_name(q->background), tdm_colour_name(an->background),
                 an->background == q->background, 1);
    char want_n[8], got_n[8];
    snprintf(want_n, sizeof want_n, "%d", nq);
    snprintf(got_n, sizeof got_n, "%d", nd);
    add_attr(res, "count", want_n, got_n, nd == nq, 1);
    res->score = res->all_present && res->n_stated > 0 ? (float)res->n_satisfied / (float)res->n_stated : 0.0f;
}

tdm_code tdm_world_check(const tdm_world_query *q, const uint8_t *rgb, int width, int height,
                         tdm_world_check_result *res, tdm_status *st) {
    tdm_world_analysis an;
    TDM_TRY(tdm_world_analyze(rgb, width, height, &an, st));
    tdm_world_score(q, &an, res);
    return TDM_OK;
}
