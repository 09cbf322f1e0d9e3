/* Tokenizer part of tdm_sd_model_load (its own file: clip_tokenizer.h and clip_text.h each define a
 * tdm_clip_text_opts, so they are not included together). */
#include "io/model_dir.h"
#include "models/clip_tokenizer.h"

/* The fields of tdm_sd_model this file touches are reached through these accessors in sd_model.c's
 * layout; to stay independent of clip_text.h the struct is not included here. */
struct tdm_sd_model;
tdm_clip_tokenizer **tdm_sd_tokenizer_slot(struct tdm_sd_model *m);
unsigned *tdm_sd_loaded_slot(struct tdm_sd_model *m);

tdm_code tdm_sd_load_tokenizer(struct tdm_sd_model *m, const tdm_tokenizer_files *tf, tdm_status *st) {
    tdm_clip_tokenizer **slot = tdm_sd_tokenizer_slot(m);
    TDM_TRY(tdm_clip_tokenizer_load_files(slot, tf->vocab_path, tf->merges_path, tf->dir, st));
    *tdm_sd_loaded_slot(m) |= 1u; /* TDM_SD_TOKENIZER */
    return TDM_OK;
}

void tdm_sd_free_tokenizer(struct tdm_sd_model *m) {
    tdm_clip_tokenizer **slot = tdm_sd_tokenizer_slot(m);
    if (*slot) tdm_clip_tokenizer_free(*slot);
    *slot = NULL;
}
