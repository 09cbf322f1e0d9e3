/* BERT WordPiece tokenizer: a synthetic vocab.txt exercising every BasicTokenizer step (lowercase,
 * accent strip, punctuation, CJK, control characters, whitespace), WordPiece ([UNK], "##", the
 * 100-character limit), special and added tokens, ImageReward's 35-token encoding and hostile input;
 * then the tokenizer-bert fixture through `tandem check` (skipped when absent). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/bert_tokenizer.h"
#include "tandem.h"
#include "check_util.h"
#include "test_util.h"

static const char *const VOCAB[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "cat", "##s", "cafe", "hello", ",", "!", "[", "]", "un",
    "##aff", "##able", "猫", "x", "##x", "sep", "i", "istanbul", "-", "'", "t", "don", "zurich", "##z", "ω", "##ς",
    "σ", "##σ",
};
enum { NV = (int)(sizeof VOCAB / sizeof VOCAB[0]) };

static int vid(const char *s) {
    for (int i = 0; i < NV; i++)
        if (strcmp(VOCAB[i], s) == 0) return i;
    return -1;
}

static const char *write_vocab(const char *name, int skip_cls) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", tdm_test_tmpdir(), name);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    for (int i = 0; i < NV; i++) fprintf(f, "%s\n", skip_cls && i == 2 ? "[cls]" : VOCAB[i]);
    fclose(f);
    return path;
}

/* Tokenizes text and compares with the space-separated expected token strings. */
static void expect(const tdm_bert_tokenizer *tok, const char *text, size_t len, const char *want) {
    int32_t *ids = NULL;
    int n = 0;
    tdm_status st;
    tdm_status_clear(&st);
    tdm_code rc = tdm_bert_tokenize(tok, text, len, TDM_BERT_SPLIT_SPECIAL, &ids, &n, &st);
    CHECK_MSG(rc == TDM_OK, "'%s': %s", text, st.msg);
    char got[1024] = "";
    size_t p = 0;
    for (int i = 0; i < n && p < sizeof got - 64; i++)
        p += (size_t)snprintf(got + p, sizeof got - p, i ? " %s" : "%s", tdm_bert_token_str(tok, ids[i]));
    CHECK_MSG(strcmp(got, want) == 0, "'%s': got '%s', expected '%s'", text, got, want);
    free(ids);
}

static void test_synthetic(void) {
    tdm_status st;
    tdm_status_clear(&st);
    const char *path = write_vocab("vocab.txt", 0);
    tdm_bert_tokenizer *tok = NULL, *ir = NULL;
    CHECK(tdm_bert_tokenizer_load(&tok, path, &st) == TDM_OK);
    CHECK(tdm_bert_tokenizer_load_imagereward(&ir, path, &st) == TDM_OK);
    if (!tok || !ir) return;
    CHECK(tdm_bert_size(tok) == NV && tdm_bert_size(ir) == NV + 2);
    CHECK(tdm_bert_token_id(ir, "[DEC]") == NV && tdm_bert_token_id(ir, "[ENC]") == NV + 1);
    CHECK(tdm_bert_cls_id(tok) == 2 && tdm_bert_sep_id(tok) == 3 && tdm_bert_pad_id(tok) == 0 && tdm_bert_unk_id(tok) == 1);
#define E(t, w) expect(tok, t, strlen(t), w)
    E("A Cat", "a cat");
    E("cats", "cat ##s");
    E("Café", "cafe");                     /* lowercase + NFD accent strip */
    E("cafe\xcc\x81", "cafe");             /* decomposed input */
    E("hello,cat!", "hello , cat !");      /* punctuation split */
    E("unaffable", "un ##aff ##able");     /* greedy longest match */
    E("unknownword", "[UNK]");             /* unmatched rest: whole word */
    E("a猫cat", "a 猫 cat");                /* CJK characters become words */
    E("  a\t\n\r\xe3\x80\x80" "cat  ", "a cat"); /* whitespace incl. U+3000 (Zs) */
    E("c\x01" "a\xc2\xad" "t", "cat");     /* control and format (soft hyphen) characters removed */
    E("a\xe2\x80\xa8" "cat", "a cat");     /* U+2028: kept by clean, split by str.split */
    E("\xc4\xb0stanbul", "istanbul");      /* U+0130 -> i + U+0307, accent stripped */
    E("don't", "don ' t");
    E("[SEP]", "[SEP]");                   /* special token kept */
    E("a[SEP]cat", "a [SEP] cat");         /* glued special split out (from_pretrained) */
    E("[sep]", "[ sep ]");                 /* case-sensitive */
    E("ΩΣ", "ω ##σ");                      /* per-character lowercase: no final sigma */
    E("", "");
    E("a\xff" "cat", "[UNK]"); /* invalid byte -> U+FFFD, removed: 'acat' unknown */
    expect(tok, "a\0cat", 5, "[UNK]");     /* NUL removed: 'acat' */
    expect(ir, "[DEC] a [ENC]", 13, "[DEC] a [ENC]");
    E("[DEC]", "[ [UNK] ]");               /* plain tokenizer: not special */
#undef E
    /* 100-character limit */
    char lng[128];
    memset(lng, 'x', 101);
    lng[101] = '\0';
    expect(tok, lng, 101, "[UNK]");
    lng[100] = '\0';
    {
        int32_t *ids;
        int n;
        CHECK(tdm_bert_tokenize(tok, lng, 100, TDM_BERT_SPLIT_SPECIAL, &ids, &n, &st) == TDM_OK);
        CHECK(n == 100 && ids[0] == vid("x") && ids[99] == vid("##x"));
        free(ids);
    }
    /* direct construction: glued specials are not split */
    {
        int32_t *ids;
        int n;
        CHECK(tdm_bert_tokenize(tok, "a[SEP]cat [SEP]", 15, TDM_BERT_SPLIT_WORDS, &ids, &n, &st) == TDM_OK);
        int want[] = {vid("a"), vid("["), vid("sep"), vid("]"), vid("cat"), 3};
        CHECK(n == 6 && memcmp(ids, want, sizeof want) == 0);
        free(ids);
    }
    /* ImageReward encoding: [CLS] ids[:33] [SEP] pad 0, mask */
    int32_t ids[35], mask[35];
    int nr, tr;
    CHECK(tdm_bert_encode(ir, "a cat", 5, 35, ids, mask, &nr, &tr, &st) == TDM_OK);
    CHECK(nr == 4 && !tr && ids[0] == 2 && ids[1] == 5 && ids[2] == 6 && ids[3] == 3 && ids[4] == 0 && ids[34] == 0);
    CHECK(mask[3] == 1 && mask[4] == 0);
    CHECK(tdm_bert_encode(ir, "", 0, 35, ids, mask, &nr, &tr, &st) == TDM_OK);
    CHECK(nr == 2 && ids[0] == 2 && ids[1] == 3 && mask[2] == 0);
    char many[400];
    size_t p = 0;
    for (int i = 0; i < 50; i++) p += (size_t)snprintf(many + p, sizeof many - p, "cat ");
    CHECK(tdm_bert_encode(ir, many, p, 35, ids, mask, &nr, &tr, &st) == TDM_OK);
    CHECK(nr == 35 && tr && ids[33] == 6 && ids[34] == 3 && mask[34] == 1);
    /* hostile input */
    size_t big = (size_t)TDM_BERT_MAX_TEXT + 1;
    char *huge = malloc(big);
    if (huge) {
        memset(huge, 'a', big);
        CHECK(tdm_bert_encode(ir, huge, big, 35, ids, mask, &nr, &tr, &st) == TDM_ERR_INVALID_ARG);
        /* a long prompt within the limit: fine, truncated */
        for (size_t i = 1; i < 200000; i += 2) huge[i] = ' ';
        CHECK(tdm_bert_encode(ir, huge, 200000, 35, ids, mask, &nr, &tr, &st) == TDM_OK && tr && nr == 35);
        free(huge);
    }
    CHECK(tdm_bert_encode(ir, "a", 1, 1, ids, mask, &nr, &tr, &st) == TDM_ERR_INVALID_ARG);
    CHECK(tdm_bert_add_special_token(ir, "", NULL, &st) == TDM_ERR_INVALID_ARG);
    int id;
    CHECK(tdm_bert_add_special_token(ir, "[DEC]", &id, &st) == TDM_OK && id == NV); /* existing: same id */
    tdm_bert_tokenizer_free(tok);
    tdm_bert_tokenizer_free(ir);

    /* load errors name the file / token */
    tdm_bert_tokenizer *bad = NULL;
    CHECK(tdm_bert_tokenizer_load(&bad, "/nonexistent/vocab.txt", &st) != TDM_OK && bad == NULL);
    CHECK(strstr(st.msg, "vocab.txt") != NULL);
    path = write_vocab("nocls.txt", 1);
    CHECK(tdm_bert_tokenizer_load(&bad, path, &st) == TDM_ERR_FORMAT && strstr(st.msg, "[CLS]") != NULL);
    char empty[4096];
    snprintf(empty, sizeof empty, "%s/empty.txt", tdm_test_tmpdir());
    FILE *f = fopen(empty, "w");
    if (f) fclose(f);
    CHECK(tdm_bert_tokenizer_load(&bad, empty, &st) != TDM_OK);
}

static void test_fixture(void) {
    int np, nf;
    if (tdm_test_check_fixture("tokenizer-bert", &np, &nf))
        CHECK_MSG(nf == 0 && np >= 5, "%d passed, %d failed", np, nf);
}

int main(void) {
    test_synthetic();
    test_fixture();
    return tdm_test_result();
}
