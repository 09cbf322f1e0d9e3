/* `tandem check` handler for kind "lora" (lora-sd15-tiny, shapes-trained-lora): the base UNet (case.json
 * "base_model") with each LoRA file (case.json "lora_file", else model-kohya/lora.safetensors and
 * model-diffusers-peft/pytorch_lora_weights.safetensors) at
 * scales 1.0 and 0.5, applied at run time over the shared base weights and merged at load, against
 * noise_pred_lora_1_0 / noise_pred_lora_0_5; noise_pred_base without LoRA; the debug.fused_1_0.* weights
 * from the merge path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "models/lora_model.h"
#include "pipeline/check.h"

typedef struct lora_case {
    tdm_check *c;
    tdm_unet *base;
    tdm_unet_inputs in;
    int64_t out_n;
    float *out; /* [B, Cout, H, W] */
    tdm_arena arena;
} lora_case;

static tdm_code run_compare(lora_case *k, const tdm_unet *u, const char *name, tdm_status *st) {
    TDM_TRY(tdm_unet_forward(u, &k->c->ex, &k->arena, &k->in, k->out, st));
    return tdm_check_compare(k->c, name, k->out, k->out_n, st);
}

/* debug.fused_1_0.<weight> vs the merged store of u. */
static tdm_code compare_fused(lora_case *k, const tdm_unet *u, tdm_status *st) {
    const tdm_safetensors *io = &k->c->io;
    const char *pre = "debug.fused_1_0.";
    for (int i = 0; i < io->n_entries; i++) {
        const char *n = io->entries[i].name;
        if (strncmp(n, pre, strlen(pre)) != 0) continue;
        const tdm_weight *w = tdm_weights_peek(tdm_unet_weights(u), n + strlen(pre));
        if (!w) return tdm_fail(st, TDM_ERR_MISSING, "%s: the UNet has no weight '%s'", k->c->dir, n + strlen(pre));
        const int64_t numel = tdm_tensor_numel(&w->t);
        float *v = malloc((size_t)numel * sizeof(float)); /* [numel] */
        if (!v) return tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        tdm_code rc = tdm_tensor_to_f32(&w->t, v, st);
        if (!rc) rc = tdm_check_compare(k->c, n, v, numel, st);
        free(v);
        TDM_TRY(rc);
    }
    return TDM_OK;
}

/* The reference of the merged path: "<out>_merged_f16" when the case has it (float16 base weights: the merged
 * W' is stored rounded to float16, which the unfused reference does not see), else out itself. */
static const char *merged_output(const lora_case *k, const char *out, char *buf, size_t n) {
    snprintf(buf, n, "%s_merged_f16", out);
    for (int i = 0; i < k->c->io.n_entries; i++)
        if (strcmp(k->c->io.entries[i].name, buf) == 0) return buf;
    return out;
}

/* One file: both scales, run-time and merged. */
static tdm_code run_file(lora_case *k, const char *rel, tdm_status *st) {
    char path[4096];
    tdm_check_path(k->c, rel, path, sizeof path);
    if (access(path, R_OK) != 0) {
        k->c->n_skip++;
        tdm_check_line(k->c, "SKIP %-48s no file %s", rel, rel);
        return TDM_OK;
    }
    tdm_lora *l = NULL;
    TDM_TRY(tdm_lora_open(&l, path, st));
    tdm_code rc = TDM_OK;
    static const struct { float scale; const char *out; } cases[] = {{1.0f, "noise_pred_lora_1_0"},
                                                                    {0.5f, "noise_pred_lora_0_5"}};
    for (int merge = 0; !rc && merge < 2; merge++)
        for (size_t i = 0; !rc && i < 2; i++) {
            tdm_lora_set *s = NULL;
            tdm_unet *u = NULL;
            rc = tdm_lora_bind(&s, tdm_unet_weights(k->base), TDM_LORA_UNET, &l, &cases[i].scale, 1, st);
            if (!rc) {
                tdm_check_line(k->c, "-- %s, scale %.1f, %s (%d weights adapted, rank %d)", rel, (double)cases[i].scale,
                               merge ? "merged at load" : "run time over the base weights", s->n, l->m[0].rank);
                rc = tdm_unet_with_lora(k->base, s, merge, &u, st);
            }
            char name[128];
            if (!rc) rc = run_compare(k, u, merge ? merged_output(k, cases[i].out, name, sizeof name) : cases[i].out, st);
            if (!rc && merge && cases[i].scale == 1.0f) rc = compare_fused(k, u, st);
            tdm_unet_free(u);
            tdm_lora_set_free(s);
        }
    tdm_lora_free(l);
    return rc;
}

tdm_code tdm_check_lora(tdm_check *c, tdm_status *st) {
    char rel[512], dir[4096], path[4096 + 64];
    lora_case k;
    memset(&k, 0, sizeof k);
    k.c = c;
    tdm_arena_init(&k.arena, (size_t)32 << 20);
    float *sample = NULL, *tsteps = NULL, *ctx = NULL;
    tdm_tensor ts, tt, tc;
    tdm_unet_config cfg;
    /* "base_model": "<relative folder> (comment)" */
    tdm_code rc = tdm_json_str(c->case_json, "base_model", "case.json", 1, NULL, rel, sizeof rel, st);
    if (!rc) {
        char *sp = strchr(rel, ' ');
        if (sp) *sp = '\0';
        tdm_check_path(c, rel, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/config.json", dir);
        rc = tdm_unet_config_load(path, &cfg, st);
    }
    if (!rc) {
        tdm_weights ws;
        snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
        rc = tdm_weights_open_file(&ws, "unet", path, "", NULL, NULL, st);
        if (!rc) rc = tdm_unet_load(&k.base, &cfg, &ws, st);
    }
    if (!rc) rc = tdm_check_input(c, "sample", &sample, &ts, st);
    if (!rc) rc = tdm_check_input(c, "timestep", &tsteps, &tt, st);
    if (!rc) rc = tdm_check_input(c, "encoder_hidden_states", &ctx, &tc, st);
    if (rc) goto done;
    if (ts.ndim != 4 || ts.shape[1] != cfg.in_channels || tt.ndim != 1 || tt.shape[0] != ts.shape[0] || tc.ndim != 3 ||
        tc.shape[0] != ts.shape[0] || tc.shape[2] != cfg.cross_attention_dim) {
        rc = tdm_fail(st, TDM_ERR_FORMAT, "%s: sample/timestep/encoder_hidden_states shapes do not fit the model",
                      c->dir);
        goto done;
    }
    k.in.B = (int)ts.shape[0];
    k.in.H = (int)ts.shape[2];
    k.in.W = (int)ts.shape[3];
    k.in.sample = sample;
    k.in.timesteps = tsteps;
    k.in.context = ctx;
    k.in.context_len = (int)tc.shape[1];
    k.out_n = (int64_t)k.in.B * cfg.out_channels * k.in.H * k.in.W;
    k.out = malloc((size_t)k.out_n * sizeof(float));
    if (!k.out) {
        rc = tdm_fail(st, TDM_ERR_NOMEM, "out of memory");
        goto done;
    }
    tdm_check_line(c, "-- base UNet %s (no LoRA)", rel);
    rc = run_compare(&k, k.base, "noise_pred_base", st);
    /* "lora_file": one LoRA file (relative to the case), e.g. a shipped model's (shapes-trained-lora);
     * without it the two files of lora-sd15-tiny */
    char lora_file[512];
    if (!rc) rc = tdm_json_str(c->case_json, "lora_file", "case.json", 1, "", lora_file, sizeof lora_file, st);
    if (!rc && lora_file[0]) {
        rc = run_file(&k, lora_file, st);
    } else if (!rc) {
        rc = run_file(&k, "model-kohya/lora.safetensors", st);
        if (!rc) rc = run_file(&k, "model-diffusers-peft/pytorch_lora_weights.safetensors", st);
    }
done:
    free(sample);
    free(tsteps);
    free(ctx);
    free(k.out);
    tdm_unet_free(k.base);
    tdm_arena_free(&k.arena);
    return rc;
}
