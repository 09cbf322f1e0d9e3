/* Internal interface between the CLIP tokenizer source files (not part of the public API). */
#ifndef TDM_MODELS_CLIP_TOKENIZER_INTERNAL_H
#define TDM_MODELS_CLIP_TOKENIZER_INTERNAL_H

#include "models/clip_tokenizer.h"
#include "models/unicode_text.h"

/* Cleans one chunk of text (code points) the way the reference does before pre-tokenisation,
 * appending to out:
 *   TDM_CLIP_CLEAN_HF:     lower(whitespace_clean(fix_text(s)))
 *   TDM_CLIP_CLEAN_OPENAI: lower(whitespace_clean(strip(html.unescape(html.unescape(fix_text(s)))))) */
tdm_code tdm_clip_clean_cps(const uint32_t *s, size_t n, int mode, tdm_u32buf *out, tdm_status *st);

/* The ftfy.fix_text port alone (clip_tokenizer_clean.c), appended to out. */
void tdm_clip_fix_text(const uint32_t *s, size_t n, tdm_u32buf *out);

#endif
