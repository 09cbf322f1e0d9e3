/* `tandem check` for kind "tokenizer-clip": tokenizes every prompt of cases.json and compares each
 * reference column, one PASS/FAIL line per column with "n/m agree" and the first mismatching case.
 *
 * tandem follows `ids_hf` (transformers CLIPTokenizer + ftfy, what diffusers feeds the text encoder;
 * docs/TOKENIZER.md). `ids_openai` (openai/CLIP simple_tokenizer) is compared twice: against tandem's
 * default ids, informational, passing when it differs only on the cases the fixture marks as reference
 * disagreements (agree = false); and against tandem's openai cleaning mode, exactly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "models/clip_tokenizer.h"
#include "models/unicode_text.h"
#include "pipeline/check.h"

enum { COL_HF, COL_OPENAI_INFO, COL_OPENAI_MODE, COL_SD15, COL_OPENCLIP, COL_SDXL2, COL_OPENCLIP_OPENAI, N_COLS };

typedef struct column {
    const char *name;  /* reference field */
    const char *label; /* report label */
    int n, agree, informational_ok;
    char first[512]; /* first mismatch */
} column;

/* ---- case texts with their exact length -----------------------------------------------------------
  * cJSON ends strings at an embedded escaped NUL (case 'control\x00char'), so the texts of cases[*] are
 * read again from the raw JSON with their byte length. */

typedef struct raw_text {
    char *s;
    size_t len;
} raw_text;

static void put_utf8(char *o, size_t *k, uint32_t cp) {
    unsigned char u[4];
    int n = tdm_utf8_encode(cp, u);
    memcpy(o + *k, u, (size_t)n);
    *k += (size_t)n;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
}

static uint32_t hex4(const char *s, size_t n, size_t i) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = i + k < n ? hexval(s[i + k]) : -1;
        if (h < 0) return 0xFFFFFFFF;
        v = v * 16 + (uint32_t)h;
    }
    return v;
}

/* Decodes the JSON string starting after the opening quote at s[*i]; advances past the closing quote.
 * out (may be NULL) receives the bytes; it needs room for (closing quote - *i) bytes. */
static int json_string(const char *s, size_t n, size_t *i, char *out, size_t *len) {
    size_t k = 0, p = *i;
    while (p < n && s[p] != '"') {
        if (s[p] != '\\') {
            if (out) out[k] = s[p];
            k++;
            p++;
            continue;
        }
        if (p + 1 >= n) return -1;
        char e = s[p + 1];
        p += 2;
        char simple = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
        if (e != 'u') {
            if (out) out[k] = simple;
            k++;
            continue;
        }
        uint32_t cp = hex4(s, n, p);
        if (cp == 0xFFFFFFFF) return -1;
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && p + 6 <= n && s[p] == '\\' && s[p + 1] == 'u') {
            uint32_t lo = hex4(s, n, p + 2);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
        }
        if (out) put_utf8(out, &k, cp);
        else k += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    }
    if (p >= n) return -1;
    *i = p + 1;
    *len = k;
    return 0;
}

/* Texts of root["cases"][*]["text"] in order; returns the count or -1 on malformed input. */
static int scan_case_texts(const char *s, size_t n, raw_text *out, int max_out) {
    char stack[64];
    int depth = 0, count = 0, cases_depth = -1, want_value = 0;
    char key[16] = "";
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '{' || c == '[') {
            if (depth >= 64) return -1;
            if (depth == 1 && c == '[' && strcmp(key, "cases") == 0) cases_depth = depth + 1;
            stack[depth++] = c;
            key[0] = '\0';
            want_value = 0;
            i++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) return -1;
            if (depth == cases_depth) cases_depth = -1;
            depth--;
            want_value = 0;
            i++;
        } else if (c == ':') {
            want_value = 1;
            i++;
        } else if (c == ',') {
            want_value = 0;
            i++;
        } else if (c == '"') {
            size_t start = ++i, len;
            if (json_string(s, n, &i, NULL, &len)) return -1;
            int in_case = cases_depth > 0 && depth == cases_depth + 1 && stack[depth - 1] == '{';
            if (depth > 0 && stack[depth - 1] == '{' && !want_value) {
                size_t kl = i - 1 - start;
                if (kl < sizeof key) {
                    memcpy(key, s + start, kl);
                    key[kl] = '\0';
                } else {
                    key[0] = '\0';
                }
            } else if (in_case && want_value && strcmp(key, "text") == 0) {
                if (count >= max_out) return -1;
                char *t = malloc(len + 1);
                if (!t) return -1;
                size_t j = start, len2;
                json_string(s, n, &j, t, &len2);
                t[len2] = '\0';
                out[count].s = t;
                out[count].len = len2;
                count++;
            }
        } else {
            i++;
        }
    }
    return count;
}

static void record(column *c, int case_id, const char *text, const int32_t *got, int n_got, const int32_t *exp,
                   int n_exp, const char *err) {
    c->n++;
    int ok = !err && n_got == n_exp && (n_got == 0 || memcmp(got, exp, (size_t)n_got * sizeof *got) == 0);
    if (ok) {
        c->agree++;
        return;
    }
    if (c->first[0]) return;
    char g[160], e[160];
    int d = 0; /* first differing position */
    while (!err && d < n_got && d < n_exp && got[d] == exp[d]) d++;
    tdm_check_fmt_ids(g, sizeof g, got + (err ? 0 : d), err ? 0 : n_got - d, 12);
    tdm_check_fmt_ids(e, sizeof e, exp + d, n_exp - d, 12);
    if (err)
        snprintf(c->first, sizeof c->first, "first mismatch: case #%d '%.40s': %s", case_id, text, err);
    else
        snprintf(c->first, sizeof c->first, "first mismatch: case #%d '%.40s' at token %d: got %s, expected %s",
                 case_id, text, d, g, e);
}

/* File name from case.json "files" whose key ends with suffix (default: suffix itself). */
static const char *file_name(const cJSON *cj, const char *suffix) {
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(cj, "files");
    const cJSON *f;
    size_t ls = strlen(suffix);
    cJSON_ArrayForEach(f, files) {
        size_t lk = f->string ? strlen(f->string) : 0;
        if (lk >= ls && strcmp(f->string + lk - ls, suffix) == 0) return f->string;
    }
    return suffix;
}

tdm_code tdm_check_tokenizer_clip(tdm_check *c, tdm_status *st) {
    char vocab[4096], merges[4096], cases_path[4096], cases_name[256];
    tdm_check_path(c, file_name(c->case_json, "vocab.json"), vocab, sizeof vocab);
    tdm_check_path(c, file_name(c->case_json, "merges.txt"), merges, sizeof merges);
    TDM_TRY(tdm_json_str(c->case_json, "cases_file", "case.json", 1, "cases.json", cases_name, sizeof cases_name, st));
    tdm_check_path(c, cases_name, cases_path, sizeof cases_path);

    tdm_clip_tokenizer *tok;
    TDM_TRY(tdm_clip_tokenizer_load_files(&tok, vocab, merges, c->dir, st));
    cJSON *root;
    tdm_code rc = tdm_json_load(cases_path, &root, st);
    if (rc) {
        tdm_clip_tokenizer_free(tok);
        return rc;
    }
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    raw_text *raw = NULL;
    int n_raw = -1, n_cases = cJSON_GetArraySize(cases);
    if (!cJSON_IsArray(cases)) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: 'cases' must be an array", cases_path);
        goto done;
    }
    {
        char *file;
        size_t flen;
        rc = tdm_read_file(cases_path, (size_t)64 << 20, &file, &flen, st);
        if (rc) goto done;
        raw = calloc((size_t)n_cases + 1, sizeof *raw);
        if (raw) n_raw = scan_case_texts(file, flen, raw, n_cases);
        free(file);
    }
    int case_no = 0;
    column col[N_COLS] = {
        {"ids_hf", "ids_hf", 0, 0, 1, ""},
        {"ids_openai", "ids_openai (vs tandem default, informational)", 0, 0, 1, ""},
        {"ids_openai", "ids_openai (openai cleaning mode)", 0, 0, 1, ""},
        {"input_ids_sd15_77", "input_ids_sd15_77 (pad 49407)", 0, 0, 1, ""},
        {"input_ids_openclip_77", "input_ids_openclip_77 (pad 0)", 0, 0, 1, ""},
        {"input_ids_sdxl_tokenizer2_77", "input_ids_sdxl_tokenizer2_77 (split '!', pad 0)", 0, 0, 1, ""},
        {"input_ids_openclip_77_from_openai_ids", "input_ids_openclip_77_from_openai_ids", 0, 0, 1, ""},
    };
    int n_noftfy = 0;
    int bang = tdm_clip_token_id(tok, "!");
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        const cJSON *jt = cJSON_GetObjectItemCaseSensitive(cs, "text");
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(cs, "id");
        const cJSON *jag = cJSON_GetObjectItemCaseSensitive(cs, "agree");
        if (!cJSON_IsString(jt)) {
            rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: a case has no 'text' string", cases_path);
            goto done;
        }
        const char *text = jt->valuestring;
        size_t text_len = strlen(text);
        if (n_raw == n_cases && raw[case_no].len >= text_len && memcmp(raw[case_no].s, text, text_len) == 0) {
            text = raw[case_no].s; /* the same text, with any embedded NUL */
            text_len = raw[case_no].len;
        }
        case_no++;
        int id = cJSON_IsNumber(jid) ? (int)jid->valuedouble : -1;
        int refs_agree = !cJSON_IsFalse(jag);
        if (cJSON_GetObjectItemCaseSensitive(cs, "ids_hf_noftfy")) n_noftfy++;

        tdm_status es;
        int32_t *got[2] = {NULL, NULL};
        int n_got[2] = {0, 0};
        const char *err[2] = {NULL, NULL};
        char errbuf[2][sizeof es.msg];
        for (int mode = 0; mode < 2; mode++) {
            tdm_clip_prompt_opts o = {mode, NULL};
            if (tdm_clip_tokenize_n(tok, text, text_len, &o, &got[mode], &n_got[mode], &es)) {
                snprintf(errbuf[mode], sizeof errbuf[mode], "%s", es.msg);
                err[mode] = errbuf[mode];
            }
        }
        int32_t *exp;
        int n_exp;
        if ((n_exp = tdm_check_json_ids(cs, "ids_hf", &exp)) >= 0)
            record(&col[COL_HF], id, text, got[0], n_got[0], exp, n_exp, err[0]);
        free(exp);
        if ((n_exp = tdm_check_json_ids(cs, "ids_openai", &exp)) >= 0) {
            int before = col[COL_OPENAI_INFO].agree;
            record(&col[COL_OPENAI_INFO], id, text, got[0], n_got[0], exp, n_exp, err[0]);
            if (col[COL_OPENAI_INFO].agree == before && refs_agree) col[COL_OPENAI_INFO].informational_ok = 0;
            record(&col[COL_OPENAI_MODE], id, text, got[1], n_got[1], exp, n_exp, err[1]);
        }
        free(exp);

        /* 77-token windows (diffusers: truncation to one window) */
        struct {
            int colno;
            int mode;
            const char *split;
            int pad;
            const char *fallback; /* expected column when the case lacks colno's field */
        } win[4] = {
            {COL_SD15, 0, NULL, tdm_clip_eos_id(tok), NULL},
            {COL_OPENCLIP, 0, NULL, 0, NULL},
            {COL_SDXL2, 0, "!", bang >= 0 ? bang : 0, "input_ids_openclip_77"},
            {COL_OPENCLIP_OPENAI, 1, NULL, 0, NULL},
        };
        for (int w = 0; w < 4; w++) {
            n_exp = tdm_check_json_ids(cs, col[win[w].colno].name, &exp);
            if (n_exp < 0 && win[w].fallback) n_exp = tdm_check_json_ids(cs, win[w].fallback, &exp);
            if (n_exp < 0) continue;
            tdm_clip_encode_opts eo;
            tdm_clip_encode_opts_init(&eo);
            eo.truncate = 1;
            eo.text.clean_mode = win[w].mode;
            eo.text.split_token = win[w].split;
            eo.pad_id = win[w].pad;
            tdm_clip_windows wd;
            const char *werr = NULL;
            if (tdm_clip_encode_windows_n(tok, text, text_len, &eo, &wd, &es)) werr = es.msg;
            record(&col[win[w].colno], id, text, werr ? NULL : wd.ids, werr ? 0 : wd.window_len, exp, n_exp, werr);
            if (!werr) tdm_clip_windows_free(&wd);
            free(exp);
        }
        free(got[0]);
        free(got[1]);
    }
    for (int k = 0; k < N_COLS; k++) {
        column *cl = &col[k];
        if (cl->n == 0) continue;
        char detail[sizeof cl->first + 64];
        int all = cl->agree == cl->n;
        if (k == COL_OPENAI_INFO && !all && cl->informational_ok) {
            snprintf(detail, sizeof detail, "%d/%d agree; differs only where the references disagree (agree=false)",
                     cl->agree, cl->n);
            tdm_check_exact(c, cl->label, 1, detail);
            continue;
        }
        snprintf(detail, sizeof detail, "%d/%d agree%s%.500s", cl->agree, cl->n, all ? "" : "; ", all ? "" : cl->first);
        tdm_check_exact(c, cl->label, all, detail);
    }
    if (n_noftfy)
        tdm_check_line(c, "INFO ids_hf_noftfy (%d cases): not compared; tandem always cleans text as with ftfy",
                       n_noftfy);
done:
    for (int k = 0; raw && k < n_raw; k++) free(raw[k].s);
    free(raw);
    cJSON_Delete(root);
    tdm_clip_tokenizer_free(tok);
    return rc;
}
