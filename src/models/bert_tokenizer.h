/* BERT WordPiece tokenizer (ImageReward's text tokenizer): transformers 4.30 slow BertTokenizer with
 * do_lower_case=True over bert-base-uncased vocab.txt, plus ImageReward's added special tokens.
 *
 * Pipeline (transformers tokenization_utils.py PreTrainedTokenizer.tokenize + tokenization_bert.py):
 *  1. UTF-8 decode (invalid bytes -> U+FFFD, removed in 3).
 *  2. Special tokens ([PAD] [UNK] [CLS] [SEP] [MASK] and added ones such as [DEC] [ENC]; exact,
 *     case-sensitive) are found; every other character is lowercased on its own (Python str.lower
 *     per character, so no final-sigma context).
 *  3. TDM_BERT_SPLIT_SPECIAL (from_pretrained, what ImageReward uses): special tokens are cut out of
 *     the text even when glued to words ("a[SEP]b"); each piece of text between them runs the
 *     BasicTokenizer. TDM_BERT_SPLIT_WORDS (BertTokenizer(vocab.txt) built directly): the whole text
 *     runs the BasicTokenizer, where a special token survives only as a whitespace-separated word.
 *  4. BasicTokenizer: drop NUL, U+FFFD and C* characters except \t \n \r; \t \n \r ' ' and Zs become
 *     spaces; spaces around CJK ideographs; NFC; split on Python whitespace; per word (unless it is a
 *     special token): lowercase, NFD + drop Mn (accent strip), split off each punctuation character
 *     (ASCII 33-47, 58-64, 91-96, 123-126 or P*).
 *  5. WordPiece: greedy longest match first, continuation pieces prefixed "##"; a word with an
 *     unmatched rest, or longer than 100 code points, becomes [UNK].
 * Unicode data: Python 3.11 unicodedata (Unicode 14.0.0), tools/gen_bert_unicode_tables.py and
 * models/unicode_tables.c. */
#ifndef TDM_MODELS_BERT_TOKENIZER_H
#define TDM_MODELS_BERT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define TDM_BERT_MAX_TEXT (1 << 20)  /* longest text accepted, in bytes */
#define TDM_BERT_MAX_WORD_CHARS 100  /* WordPiece max_input_chars_per_word */
#define TDM_BERT_IMAGEREWARD_MAX_LEN 35

typedef struct tdm_bert_tokenizer tdm_bert_tokenizer;

typedef enum tdm_bert_split_mode {
    TDM_BERT_SPLIT_SPECIAL = 0, /* BertTokenizer.from_pretrained (default; ImageReward) */
    TDM_BERT_SPLIT_WORDS = 1    /* BertTokenizer(vocab_file) constructed directly */
} tdm_bert_split_mode;

/* Loads vocab.txt (one token a line, id = line index, as transformers load_vocab: a later duplicate
 * wins). [PAD] [UNK] [CLS] [SEP] must be present; [MASK] is optional. */
tdm_code tdm_bert_tokenizer_load(tdm_bert_tokenizer **out, const char *vocab_txt, tdm_status *st);
/* ImageReward's tokenizer (BLIP init_tokenizer): vocab.txt + [DEC] (bos, 30522) + [ENC] (30523). */
tdm_code tdm_bert_tokenizer_load_imagereward(tdm_bert_tokenizer **out, const char *vocab_txt, tdm_status *st);
void tdm_bert_tokenizer_free(tdm_bert_tokenizer *tok);

/* tokenizer.add_special_tokens: a new token with id = current size, never split (returned in *id;
 * an existing token keeps its id). At most 1000 added tokens, each 1..64 bytes. */
tdm_code tdm_bert_add_special_token(tdm_bert_tokenizer *tok, const char *token, int *id, tdm_status *st);

int tdm_bert_size(const tdm_bert_tokenizer *tok); /* len(tokenizer): vocab + added tokens */
int tdm_bert_cls_id(const tdm_bert_tokenizer *tok);
int tdm_bert_sep_id(const tdm_bert_tokenizer *tok);
int tdm_bert_pad_id(const tdm_bert_tokenizer *tok);
int tdm_bert_unk_id(const tdm_bert_tokenizer *tok);
/* Id of a token string (vocab or added), -1 when absent. */
int tdm_bert_token_id(const tdm_bert_tokenizer *tok, const char *token);
/* Token string of an id, NULL when out of range. */
const char *tdm_bert_token_str(const tdm_bert_tokenizer *tok, int id);

/* Token ids of text[len] (may hold NULs), without [CLS]/[SEP], no truncation. *ids malloc'ed
 * (caller frees; may be NULL when *n = 0). */
tdm_code tdm_bert_tokenize(const tdm_bert_tokenizer *tok, const char *text, size_t len, tdm_bert_split_mode mode,
                           int32_t **ids, int *n, tdm_status *st);

/* tokenizer(text, padding='max_length', truncation=True, max_length=max_len) as ImageReward calls it
 * (max_len 35): ids[max_len] = [CLS] first (max_len - 2) tokens [SEP] then [PAD]; mask[max_len] 1 for
 * real tokens. *n_real (may be NULL) = tokens before padding; *truncated (may be NULL) = 1 when
 * tokens were dropped. max_len >= 2. */
tdm_code tdm_bert_encode(const tdm_bert_tokenizer *tok, const char *text, size_t len, int max_len, int32_t *ids,
                         int32_t *mask, int *n_real, int *truncated, tdm_status *st);

#endif
