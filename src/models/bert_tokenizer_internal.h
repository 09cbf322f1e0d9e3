/* Private to bert_tokenizer.c and its generated table (bert_unicode_tables.c). */
#ifndef TDM_MODELS_BERT_TOKENIZER_INTERNAL_H
#define TDM_MODELS_BERT_TOKENIZER_INTERNAL_H

#include <stdint.h>

/* General-category classes the BERT BasicTokenizer asks unicodedata about. */
enum { TDM_BERT_UC_OTHER = 0, TDM_BERT_UC_CONTROL = 1 /* C* */, TDM_BERT_UC_PUNCT = 2 /* P* */,
       TDM_BERT_UC_ZS = 3 /* Zs */, TDM_BERT_UC_MN = 4 /* Mn */ };

typedef struct { uint32_t lo, hi; uint8_t v; } tdm_bert_uc_range; /* [lo, hi] -> class */

extern const tdm_bert_uc_range tdm_bert_uc_ranges[1233];

#endif
