/* Shapes-world edit pairs and the preservation check (see edit_pairs.h, docs/EDITING.md). */
#include "world/edit_pairs.h"

#include <stdio.h>
#include <string.h>

static const char *const k_kind_names[TDM_WORLD_N_EDIT_KINDS] = {"colour", "position", "size", "background"};

const char *tdm_world_edit_kind_name(int kind) {
    return kind >= 0 && kind < TDM_WORLD_N_EDIT_KINDS ? k_kind_names[kind] : "?";
}

/* One candidate edit: kind, object, new value. */
typedef struct edit_cand {
    int kind, object, to;
} edit_cand;

#define MAX_CANDS 64

/* The target scene of candidate c applied to src. */
static void apply_edit(const tdm_world_scene *src, const edit_cand *c, tdm_world_scene *dst) {
    static const float cell_centre[3] = {1.0f / 6.0f, 0.5f, 5.0f / 6.0f};
    static const int col[TDM_N_POSITIONS] = {0, 2, 1, 1, 1}, row[TDM_N_POSITIONS] = {1, 1, 0, 2, 1};
    *dst = *src;
    switch (c->kind) {
    case TDM_WORLD_EDIT_COLOUR: dst->obj[c->object].colour = c->to; break;
    case TDM_WORLD_EDIT_SIZE:
        dst->obj[c->object].size = c->to;
        dst->obj[c->object].extent = c->to == TDM_SMALL ? 0.5f * (TDM_WORLD_SMALL_MIN + TDM_WORLD_SMALL_MAX)
                                                        : 0.5f * (TDM_WORLD_LARGE_MIN + TDM_WORLD_LARGE_MAX);
        break;
    case TDM_WORLD_EDIT_BACKGROUND: dst->background = c->to; break;
    default: /* position */
        if (src->n_objects == 1) {
            dst->obj[0].position = c->to;
            dst->obj[0].cx = cell_centre[col[c->to]];
            dst->obj[0].cy = cell_centre[row[c->to]];
        } else { /* the relation inverted: the objects swap places */
            dst->relation = c->to;
            dst->obj[0].cx = src->obj[1].cx, dst->obj[0].cy = src->obj[1].cy;
            dst->obj[1].cx = src->obj[0].cx, dst->obj[1].cy = src->obj[0].cy;
            dst->obj[0].position = src->obj[1].position;
            dst->obj[1].position = src->obj[0].position;
        }
        break;
    }
}

/* Candidates of one kind for scene sc (before the held-out rule). */
static int candidates(const tdm_world_scene *sc, int kind, edit_cand *out) {
    int n = 0;
    switch (kind) {
    case TDM_WORLD_EDIT_COLOUR:
        for (int i = 0; i < sc->n_objects; i++)
            for (int c = 0; c < TDM_N_COLOURS; c++) {
                const int other = sc->n_objects == 2 ? sc->obj[1 - i].colour : -1;
                if (tdm_colour_is_object(c) && c != sc->obj[i].colour && c != sc->background && c != other)
                    out[n++] = (edit_cand){kind, i, c};
            }
        break;
    case TDM_WORLD_EDIT_POSITION:
        if (sc->n_objects == 1) {
            for (int p = 0; p < TDM_N_POSITIONS; p++)
                if (p != sc->obj[0].position) out[n++] = (edit_cand){kind, 0, p};
        } else {
            out[n++] = (edit_cand){kind, 0, tdm_relation_inverse(sc->relation)};
        }
        break;
    case TDM_WORLD_EDIT_SIZE:
        for (int i = 0; i < sc->n_objects; i++) out[n++] = (edit_cand){kind, i, 1 - sc->obj[i].size};
        break;
    default: {
        static const int bgs[3] = {TDM_WHITE, TDM_BLACK, TDM_GRAY};
        for (int b = 0; b < 3; b++) {
            int ok = bgs[b] != sc->background;
            for (int i = 0; i < sc->n_objects; i++) ok &= sc->obj[i].colour != bgs[b];
            if (ok) out[n++] = (edit_cand){kind, -1, bgs[b]};
        }
        break;
    }
    }
    return n;
}

/* How the instruction names object i: its shape, or colour + shape when both objects share the shape. */
static void object_ref(const tdm_world_scene *sc, int i, char *buf, size_t n) {
    if (sc->n_objects == 2 && sc->obj[0].shape == sc->obj[1].shape)
        snprintf(buf, n, "%s %s", tdm_colour_name(sc->obj[i].colour), tdm_shape_name(sc->obj[i].shape));
    else snprintf(buf, n, "%s", tdm_shape_name(sc->obj[i].shape));
}

static void instruction(const tdm_world_scene *sc, const edit_cand *c, char *buf, size_t n) {
    char ref[48], other[48];
    if (c->object >= 0) object_ref(sc, c->object, ref, sizeof ref);
    switch (c->kind) {
    case TDM_WORLD_EDIT_COLOUR: snprintf(buf, n, "make the %s %s", ref, tdm_colour_name(c->to)); break;
    case TDM_WORLD_EDIT_SIZE: snprintf(buf, n, "make the %s %s", ref, c->to == TDM_LARGE ? "larger" : "smaller"); break;
    case TDM_WORLD_EDIT_BACKGROUND: snprintf(buf, n, "make the background %s", tdm_colour_name(c->to)); break;
    default:
        if (sc->n_objects == 1) {
            snprintf(buf, n, "move the %s to the %s", ref, tdm_position_name(c->to));
        } else {
            object_ref(sc, 1, other, sizeof other);
            snprintf(buf, n, "move the %s %s the %s", ref, tdm_relation_name(c->to), other);
        }
        break;
    }
}

static int scene_held_out(const tdm_world_scene *sc) {
    for (int i = 0; i < sc->n_objects; i++)
        if (tdm_world_pair_held_out(sc->obj[i].colour, sc->obj[i].shape)) return 1;
    return 0;
}

tdm_code tdm_world_edit_pair_make(uint64_t seed, uint64_t index, tdm_world_edit_pair *out, tdm_status *st) {
    memset(out, 0, sizeof *out);
    if (index >= (1ull << 40))
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "edit pair index %llu is over 2^40", (unsigned long long)index);
    /* kind weights: colour 35%, position 35%, size 15%, background 15% */
    static const float cum[TDM_WORLD_N_EDIT_KINDS] = {0.35f, 0.70f, 0.85f, 1.0f};
    for (uint64_t attempt = 0; attempt < 64; attempt++) {
        const uint64_t scene_index = index + (attempt << 40);
        tdm_world_scene src;
        TDM_TRY(tdm_world_sample(seed, TDM_SPLIT_TEST, scene_index, &src, st));
        tdm_world_rng r = {seed, index | (1ull << 61), attempt * 16};
        const float u = tdm_world_rng_uniform(&r);
        int first = 0;
        while (first < TDM_WORLD_N_EDIT_KINDS - 1 && u >= cum[first]) first++;
        for (int t = 0; t < TDM_WORLD_N_EDIT_KINDS; t++) {
            const int kind = (first + t) % TDM_WORLD_N_EDIT_KINDS;
            edit_cand all[MAX_CANDS], ok[MAX_CANDS];
            const int n_all = candidates(&src, kind, all);
            int n_ok = 0;
            for (int j = 0; j < n_all; j++) { /* held-out rule: the target is a test-split combination too */
                tdm_world_scene tgt;
                apply_edit(&src, &all[j], &tgt);
                if (tdm_world_split(&tgt) == TDM_SPLIT_TEST) ok[n_ok++] = all[j];
            }
            if (!n_ok) continue;
            const edit_cand c = ok[tdm_world_rng_int(&r, n_ok)];
            out->scene_index = scene_index;
            out->source = src;
            apply_edit(&src, &c, &out->target);
            out->kind = c.kind;
            out->object = c.object;
            out->to = c.to;
            switch (c.kind) {
            case TDM_WORLD_EDIT_COLOUR: out->from = src.obj[c.object].colour; break;
            case TDM_WORLD_EDIT_SIZE: out->from = src.obj[c.object].size; break;
            case TDM_WORLD_EDIT_BACKGROUND: out->from = src.background; break;
            default: out->from = src.n_objects == 1 ? src.obj[0].position : src.relation; break;
            }
            tdm_world_scene_query(&out->target, &out->target_query);
            tdm_world_scene_query(&src, &out->keep);
            switch (c.kind) { /* the edited attribute is left open */
            case TDM_WORLD_EDIT_COLOUR: out->keep.obj[c.object].colour = TDM_ANY; break;
            case TDM_WORLD_EDIT_SIZE: out->keep.obj[c.object].size = TDM_ANY; break;
            case TDM_WORLD_EDIT_BACKGROUND: out->keep.background = TDM_ANY; break;
            default:
                if (src.n_objects == 1) out->keep.obj[0].position = TDM_ANY;
                else out->keep.relation = TDM_ANY;
                break;
            }
            /* the source caption with the target caption's paraphrase (the same draws): the two differ in
             * the edited words only, as a DiffEdit source / target prompt pair does (masked editing) */
            const tdm_world_rng cr0 = {seed, index | (1ull << 61) | (1ull << 60), attempt * 16};
            tdm_world_rng cr = cr0;
            TDM_TRY(tdm_world_caption_text(&out->target_query, &cr, out->caption, sizeof out->caption, st));
            tdm_world_query sq;
            tdm_world_scene_query(&src, &sq);
            cr = cr0;
            TDM_TRY(tdm_world_caption_text(&sq, &cr, out->source_caption, sizeof out->source_caption, st));
            instruction(&src, &c, out->instruction, sizeof out->instruction);
            out->held_out = scene_held_out(&src) || scene_held_out(&out->target);
            return TDM_OK;
        }
    }
    return tdm_fail(st, TDM_ERR_INTERNAL, "edit pair %llu: no scene with a valid edit in 64 tries",
                    (unsigned long long)index);
}

/* ---- preservation ---- */

static void append_name(char *buf, size_t n, const char *name) {
    if (!buf || !n) return;
    size_t len = strlen(buf);
    snprintf(buf + len, n - len, "%s%s", len ? "," : "", name);
}

tdm_code tdm_world_keep_query_infer(const tdm_world_analysis *src, const tdm_world_query *target,
                                    tdm_world_query *keep, char *changed, size_t changed_size, tdm_status *st) {
    if (changed && changed_size) changed[0] = '\0';
    const int n = src->n_detections < 2 ? src->n_detections : 2;
    if (n < 1) return tdm_fail(st, TDM_ERR_INVALID_ARG, "the source image shows no shapes-world object");
    const int nq = target->n_objects < 1 ? 1 : target->n_objects > 2 ? 2 : target->n_objects;
    if (nq != n)
        return tdm_fail(st, TDM_ERR_INVALID_ARG,
                        "the source shows %d object%s, the prompt describes %d (only edits that keep "
                        "the objects are measured)",
                        n, n == 1 ? "" : "s", nq);
    memset(keep, 0, sizeof *keep);
    keep->n_objects = n;
    keep->background = src->background;
    keep->relation = n == 2 ? tdm_world_relation_of(&src->det[0], &src->det[1]) : TDM_ANY;
    for (int i = 0; i < 2; i++) {
        tdm_world_obj_query *o = &keep->obj[i];
        if (i >= n) {
            o->colour = o->shape = o->size = o->position = TDM_ANY;
            continue;
        }
        o->colour = src->det[i].colour;
        o->shape = src->det[i].shape;
        o->size = src->det[i].size;
        o->position = n == 1 ? src->det[i].position : TDM_ANY;
    }
    /* what the target states and the source lacks is what the prompt asks to change */
    tdm_world_check_result res;
    tdm_world_score(target, src, &res);
    for (int a = 0; a < res.n_attrs; a++) {
        const tdm_world_attr_result *at = &res.attr[a];
        if (at->ok) continue;
        if (strncmp(at->name, "object", 6) == 0 && (at->name[6] == '1' || at->name[6] == '2') && at->name[7] == '.') {
            const int m = res.match[at->name[6] - '1'];
            if (m < 0 || m >= n) continue;
            const char *f = at->name + 8;
            tdm_world_obj_query *o = &keep->obj[m];
            if (strcmp(f, "colour") == 0) o->colour = TDM_ANY;
            else if (strcmp(f, "shape") == 0) o->shape = TDM_ANY;
            else if (strcmp(f, "size") == 0) o->size = TDM_ANY;
            else if (strcmp(f, "position") == 0) o->position = TDM_ANY;
            else continue;
        } else if (strcmp(at->name, "relation") == 0) {
            keep->relation = TDM_ANY;
        } else if (strcmp(at->name, "background") == 0) {
            keep->background = TDM_ANY;
        } else {
            continue;
        }
        append_name(changed, changed_size, at->name);
    }
    return TDM_OK;
}

int tdm_world_preserved(const tdm_world_query *keep, const tdm_world_analysis *edit, int *kept, int *checked,
                        char *lost, size_t lost_size) {
    if (lost && lost_size) lost[0] = '\0';
    tdm_world_check_result res;
    tdm_world_score(keep, edit, &res);
    for (int a = 0; a < res.n_attrs; a++)
        if (!res.attr[a].ok && strstr(res.attr[a].name, ".present") == NULL) append_name(lost, lost_size, res.attr[a].name);
    if (kept) *kept = res.n_satisfied;
    if (checked) *checked = res.n_stated;
    return res.all_present && res.n_satisfied == res.n_stated;
}
