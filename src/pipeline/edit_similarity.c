/* Preservation measure (a) of an edit: cosine similarity of CLIP image embeddings (tandem.h
 * tdm_image_similarity; docs/EDITING.md). The tower is transformers' CLIPVisionModel(WithProjection) (or the
 * vision half of a CLIPModel folder); preprocessing is the folder's CLIPImageProcessor config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "models/clip_scores.h"
#include "models/clip_vision.h"
#include "pipeline/adaptive.h"

struct tdm_image_similarity {
    tdm_clip_vision *vision;
    tdm_clip_image_proc proc;
    const tdm_exec *ex;
    int dim; /* embedding width: projection_dim, or hidden_size without a projection */
};

tdm_code tdm_image_similarity_open(const char *dir, tdm_engine *engine, tdm_image_similarity **out, tdm_status *st) {
    if (!out) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_image_similarity_open: NULL result");
    *out = NULL;
    if (!dir || !*dir) return tdm_fail(st, TDM_ERR_INVALID_ARG, "similarity: no CLIP model folder given");
    tdm_image_similarity *s = calloc(1, sizeof *s);
    if (!s) return tdm_fail(st, TDM_ERR_NOMEM, "similarity: out of memory");
    s->ex = engine ? tdm_engine_exec(engine) : NULL;
    tdm_code rc = tdm_clip_vision_load_dir(&s->vision, dir, st);
    if (rc) {
        free(s);
        return tdm_fail_context(st, "similarity model %s", dir);
    }
    const tdm_clip_vision_config *vc = &s->vision->cfg;
    if (vc->num_channels != 3) {
        tdm_image_similarity_free(s);
        return tdm_fail(st, TDM_ERR_UNSUPPORTED, "similarity model %s: the vision tower takes %d channels, not 3", dir,
                        vc->num_channels);
    }
    char pp[4096];
    snprintf(pp, sizeof pp, "%s/preprocessor_config.json", dir);
    FILE *f = fopen(pp, "rb");
    if (f) {
        fclose(f);
        rc = tdm_clip_image_proc_load(pp, vc->image_size, &s->proc, st);
        if (rc) {
            tdm_image_similarity_free(s);
            return rc;
        }
    } else {
        tdm_clip_image_proc_default(&s->proc, vc->image_size);
    }
    s->dim = s->vision->has_projection ? vc->projection_dim : vc->hidden_size;
    *out = s;
    return TDM_OK;
}

void tdm_image_similarity_free(tdm_image_similarity *s) {
    if (!s) return;
    tdm_clip_vision_free(s->vision);
    free(s);
}

/* emb [dim]: image_embeds (projected) or the pooled output. */
static tdm_code embed(tdm_image_similarity *s, const tdm_image *img, float *emb, tdm_status *st) {
    const tdm_clip_vision_config *vc = &s->vision->cfg;
    if (!img || !img->pixels || img->channels != 3 || img->width < 1 || img->height < 1)
        return tdm_fail(st, TDM_ERR_INVALID_ARG, "similarity: empty image");
    int ow, oh;
    TDM_TRY(tdm_clip_image_proc_out_size(&s->proc, img->width, img->height, &ow, &oh, st));
    if (ow != vc->image_size || oh != vc->image_size)
        return tdm_fail(st, TDM_ERR_FORMAT, "similarity: preprocessing makes %dx%d pixels, the vision tower takes %dx%d",
                        ow, oh, vc->image_size, vc->image_size);
    float *px = malloc((size_t)3 * ow * oh * sizeof(float)); /* [1, 3, S, S] */
    if (!px) return tdm_fail(st, TDM_ERR_NOMEM, "similarity: out of memory");
    tdm_code rc = tdm_clip_preprocess(&s->proc, img, px, NULL, NULL, st);
    tdm_arena arena;
    tdm_arena_init(&arena, 0);
    if (!rc)
        rc = tdm_clip_vision_forward(s->vision, s->ex, &arena, px, 1, NULL, NULL, NULL,
                                     s->vision->has_projection ? NULL : emb, s->vision->has_projection ? emb : NULL, st);
    tdm_arena_free(&arena);
    free(px);
    return rc;
}

tdm_code tdm_image_similarity_cosine(tdm_image_similarity *s, const tdm_image *a, const tdm_image *b, double *cosine,
                                     tdm_status *st) {
    if (!s || !cosine) return tdm_fail(st, TDM_ERR_INVALID_ARG, "tdm_image_similarity_cosine: NULL argument");
    float *ea = malloc(sizeof(float) * 2 * (size_t)s->dim); /* [2, dim] */
    if (!ea) return tdm_fail(st, TDM_ERR_NOMEM, "similarity: out of memory");
    float *eb = ea + s->dim;
    tdm_code rc = embed(s, a, ea, st);
    if (!rc) rc = embed(s, b, eb, st);
    if (!rc) *cosine = tdm_clip_cosine(ea, eb, s->dim);
    free(ea);
    return rc;
}
