/* `tandem check` for kind "tokenizer-bert": tokenizes every prompt of cases.json with the plain
 * bert-base-uncased tokenizer (vocab.txt, from_pretrained behaviour), ImageReward's tokenizer
 * ([DEC]/[ENC] added) and the directly constructed one, and compares each reference column exactly:
 * one PASS/FAIL line per column with "n/m agree" and the first mismatching case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "models/bert_tokenizer.h"
#include "models/unicode_text.h"
#include "pipeline/check.h"

enum { COL_TOKENS, COL_IDS, COL_IR35, COL_MASK35, COL_TRUNC35, COL_ADDED, COL_ADDED_TOKENS, COL_DIRECT, N_COLS };

typedef struct column {
    const char *name;
    int n, agree;
    char first[400];
} column;

/* ---- raw case texts ------------------------------------------------------------------------------
 * cJSON ends strings at an escaped NUL (case 'control\u0000char'), so the "text" values of the case
 * objects are decoded again from the raw file with their byte length. */

typedef struct raw_text {
    char *s;
    size_t len;
} raw_text;

static int hexv(char c) {
    return c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
}

static long hex4(const char *s, size_t n, size_t i) {
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = i + k < n ? hexv(s[i + k]) : -1;
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Decodes the JSON string whose opening quote is at s[*i]; out (NULL: measure only) gets the bytes.
 * Advances *i past the closing quote; -1 on malformed input. */
static int jstring(const char *s, size_t n, size_t *i, char *out, size_t *len) {
    size_t k = 0, p = *i + 1;
    while (p < n && s[p] != '"') {
        if (s[p] != '\\') {
            if (out) out[k] = s[p];
            k++, p++;
            continue;
        }
        if (p + 1 >= n) return -1;
        char e = s[p + 1];
        p += 2;
        if (e != 'u') {
            char c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            if (out) out[k] = c;
            k++;
            continue;
        }
        long cp = hex4(s, n, p);
        if (cp < 0) return -1;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && p + 6 <= n && s[p] == '\\' && s[p + 1] == 'u') {
            long lo = hex4(s, n, p + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
        }
        unsigned char u[4];
        int m = tdm_utf8_encode((uint32_t)cp, u);
        if (out) memcpy(out + k, u, (size_t)m);
        k += (size_t)m;
    }
    if (p >= n) return -1;
    *i = p + 1;
    *len = k;
    return 0;
}

/* root["cases"][*]["text"] in order; returns the count, or -1 when the file is not as expected. */
static int scan_texts(const char *s, size_t n, raw_text *out, int max_out) {
    int depth = 0, count = 0, cases_depth = -1, after_colon = 0;
    char key[16] = "";
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '"') {
            size_t start = i, len;
            if (jstring(s, n, &i, NULL, &len)) return -1;
            if (!after_colon) { /* a key (or an array element, harmless) */
                size_t kl = i - start - 2;
                if (kl < sizeof key) memcpy(key, s + start + 1, kl), key[kl] = '\0';
                else key[0] = '\0';
            } else if (cases_depth > 0 && depth == cases_depth + 1 && strcmp(key, "text") == 0) {
                if (count >= max_out) return -1;
                char *t = malloc(len + 1);
                if (!t) return -1;
                size_t j = start;
                jstring(s, n, &j, t, &len);
                t[len] = '\0';
                out[count].s = t;
                out[count++].len = len;
            }
            after_colon = 0;
            continue;
        }
        if (c == '{' || c == '[') {
            if (depth == 1 && c == '[' && strcmp(key, "cases") == 0) cases_depth = depth + 1;
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == cases_depth) cases_depth = -1;
            depth--;
        }
        if (c == ':') after_colon = 1;
        else if (c == ',' || c == '{' || c == '[' || c == '}' || c == ']') after_colon = 0;
        i++;
    }
    return count;
}

/* ---- comparison ------------------------------------------------------------------------------------ */

static void record(column *c, int id, const char *text, const int32_t *got, int n_got, const int32_t *exp, int n_exp,
                   const char *err) {
    c->n++;
    if (!err && n_got == n_exp && (n_got == 0 || memcmp(got, exp, (size_t)n_got * sizeof *got) == 0)) {
        c->agree++;
        return;
    }
    if (c->first[0]) return;
    if (err) {
        snprintf(c->first, sizeof c->first, "case #%d '%.40s': %s", id, text, err);
        return;
    }
    int d = 0;
    while (d < n_got && d < n_exp && got[d] == exp[d]) d++;
    char g[120], e[120];
    tdm_check_fmt_ids(g, sizeof g, got + d, n_got - d, 10);
    tdm_check_fmt_ids(e, sizeof e, exp + d, n_exp - d, 10);
    snprintf(c->first, sizeof c->first, "case #%d '%.40s' at %d: got %s, expected %s", id, text, d, g, e);
}

/* Token strings of a case field, mapped to ids through tok (-2 for unknown strings). */
static int json_token_ids(const cJSON *cs, const char *key, const tdm_bert_tokenizer *tok, int32_t **out) {
    *out = NULL;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cs, key);
    if (!cJSON_IsArray(a)) return -1;
    int n = cJSON_GetArraySize(a), i = 0;
    int32_t *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v) return -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) {
        int id = cJSON_IsString(e) ? tdm_bert_token_id(tok, e->valuestring) : -1;
        v[i++] = id >= 0 ? id : -2;
    }
    *out = v;
    return n;
}

static int32_t *with_cls_sep(const tdm_bert_tokenizer *tok, const int32_t *ids, int n) {
    int32_t *v = malloc((size_t)(n + 2) * sizeof *v);
    if (!v) return NULL;
    v[0] = tdm_bert_cls_id(tok);
    if (n) memcpy(v + 1, ids, (size_t)n * sizeof *ids);
    v[n + 1] = tdm_bert_sep_id(tok);
    return v;
}

tdm_code tdm_check_tokenizer_bert(tdm_check *c, tdm_status *st) {
    char vocab[4096], cases_path[4096], cases_name[256];
    TDM_TRY(tdm_json_str(c->case_json, "cases_file", "case.json", 1, "cases.json", cases_name, sizeof cases_name, st));
    tdm_check_path(c, "vocab.txt", vocab, sizeof vocab);
    tdm_check_path(c, cases_name, cases_path, sizeof cases_path);
    tdm_bert_tokenizer *plain = NULL, *ir = NULL;
    cJSON *root = NULL;
    raw_text *raw = NULL;
    int n_raw = -1;
    tdm_code rc = tdm_bert_tokenizer_load(&plain, vocab, st);
    if (!rc) rc = tdm_bert_tokenizer_load_imagereward(&ir, vocab, st);
    if (!rc) rc = tdm_json_load(cases_path, &root, st);
    if (rc) goto done;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    if (!cJSON_IsArray(cases)) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: 'cases' must be an array", cases_path);
        goto done;
    }
    int n_cases = cJSON_GetArraySize(cases);
    {
        char *file;
        size_t flen;
        if ((rc = tdm_read_file(cases_path, (size_t)64 << 20, &file, &flen, st))) goto done;
        raw = calloc((size_t)n_cases + 1, sizeof *raw);
        if (raw) n_raw = scan_texts(file, flen, raw, n_cases);
        free(file);
    }
    tdm_check_line(c, "vocab %d tokens; ImageReward tokenizer %d (with [DEC]=%d [ENC]=%d)", tdm_bert_size(plain),
                   tdm_bert_size(ir), tdm_bert_token_id(ir, "[DEC]"), tdm_bert_token_id(ir, "[ENC]"));
    column col[N_COLS] = {{"tokens", 0, 0, ""},
                          {"ids", 0, 0, ""},
                          {"ids_imagereward_35", 0, 0, ""},
                          {"attention_mask_imagereward_35", 0, 0, ""},
                          {"truncated_35", 0, 0, ""},
                          {"ids_with_added_tokens", 0, 0, ""},
                          {"tokens_with_added_tokens", 0, 0, ""},
                          {"ids_direct_construction", 0, 0, ""}};
    int case_no = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const cJSON *jt = cJSON_GetObjectItemCaseSensitive(cs, "text");
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(cs, "id");
        if (!cJSON_IsString(jt)) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: case %d has no 'text' string", cases_path, case_no);
            goto done;
        }
        const char *text = jt->valuestring;
        size_t len = strlen(text);
        if (n_raw == n_cases && raw[case_no].len >= len && memcmp(raw[case_no].s, text, len) == 0) {
            text = raw[case_no].s; /* same text with any embedded NUL */
            len = raw[case_no].len;
        }
        case_no++;
        int id = cJSON_IsNumber(jid) ? (int)jid->valuedouble : case_no - 1;
        tdm_status es;
        char err[3][sizeof es.msg];
        int32_t *got[3] = {NULL, NULL, NULL};
        int n_got[3] = {0, 0, 0};
        const tdm_bert_tokenizer *toks[3] = {plain, ir, plain};
        tdm_bert_split_mode modes[3] = {TDM_BERT_SPLIT_SPECIAL, TDM_BERT_SPLIT_SPECIAL, TDM_BERT_SPLIT_WORDS};
        for (int k = 0; k < 3; k++) {
            err[k][0] = '\0';
            if (tdm_bert_tokenize(toks[k], text, len, modes[k], &got[k], &n_got[k], &es))
                snprintf(err[k], sizeof err[k], "%s", es.msg);
        }
        const char *e0 = err[0][0] ? err[0] : NULL, *e1 = err[1][0] ? err[1] : NULL, *e2 = err[2][0] ? err[2] : NULL;
        int32_t *exp, *full;
        int n_exp;
        if ((n_exp = json_token_ids(cs, "tokens", plain, &exp)) >= 0)
            record(&col[COL_TOKENS], id, text, got[0], n_got[0], exp, n_exp, e0);
        free(exp);
        full = with_cls_sep(plain, got[0], n_got[0]);
        if ((n_exp = tdm_check_json_ids(cs, "ids", &exp)) >= 0)
            record(&col[COL_IDS], id, text, full, full ? n_got[0] + 2 : 0, exp, n_exp, e0 ? e0 : full ? NULL : "oom");
        free(exp);
        free(full);
        /* ImageReward: padding='max_length', truncation=True, max_length=35 */
        int32_t ids35[TDM_BERT_IMAGEREWARD_MAX_LEN], mask35[TDM_BERT_IMAGEREWARD_MAX_LEN];
        int trunc = 0;
        const char *e35 = NULL;
        if (tdm_bert_encode(ir, text, len, TDM_BERT_IMAGEREWARD_MAX_LEN, ids35, mask35, NULL, &trunc, &es)) {
            snprintf(err[1], sizeof err[1], "%s", es.msg);
            e35 = err[1];
        }
        if ((n_exp = tdm_check_json_ids(cs, "ids_imagereward_35", &exp)) >= 0)
            record(&col[COL_IR35], id, text, ids35, TDM_BERT_IMAGEREWARD_MAX_LEN, exp, n_exp, e35);
        free(exp);
        if ((n_exp = tdm_check_json_ids(cs, "attention_mask_imagereward_35", &exp)) >= 0)
            record(&col[COL_MASK35], id, text, mask35, TDM_BERT_IMAGEREWARD_MAX_LEN, exp, n_exp, e35);
        free(exp);
        const cJSON *jtr = cJSON_GetObjectItemCaseSensitive(cs, "truncated_35");
        if (cJSON_IsBool(jtr)) {
            int32_t g = trunc, x = cJSON_IsTrue(jtr);
            record(&col[COL_TRUNC35], id, text, &g, 1, &x, 1, e35);
        }
        full = with_cls_sep(ir, got[1], n_got[1]);
        if ((n_exp = tdm_check_json_ids(cs, "ids_with_added_tokens", &exp)) >= 0)
            record(&col[COL_ADDED], id, text, full, full ? n_got[1] + 2 : 0, exp, n_exp, e1 ? e1 : full ? NULL : "oom");
        free(exp);
        free(full);
        if ((n_exp = json_token_ids(cs, "tokens_with_added_tokens", ir, &exp)) >= 0)
            record(&col[COL_ADDED_TOKENS], id, text, got[1], n_got[1], exp, n_exp, e1);
        free(exp);
        full = with_cls_sep(plain, got[2], n_got[2]);
        if ((n_exp = tdm_check_json_ids(cs, "ids_direct_construction", &exp)) >= 0)
            record(&col[COL_DIRECT], id, text, full, full ? n_got[2] + 2 : 0, exp, n_exp, e2 ? e2 : full ? NULL : "oom");
        free(exp);
        free(full);
        for (int k = 0; k < 3; k++) free(got[k]);
    }
    for (int k = 0; k < N_COLS; k++) {
        column *cl = &col[k];
        if (cl->n == 0) continue;
        char detail[sizeof cl->first + 64];
        int all = cl->agree == cl->n;
        snprintf(detail, sizeof detail, "%d/%d agree%s%s", cl->agree, cl->n, all ? "" : "; first mismatch: ",
                 all ? "" : cl->first);
        tdm_check_exact(c, cl->name, all, detail);
    }
done:
    for (int k = 0; raw && k < n_raw; k++) free(raw[k].s);
    free(raw);
    cJSON_Delete(root);
    tdm_bert_tokenizer_free(plain);
    tdm_bert_tokenizer_free(ir);
    return rc;
}
