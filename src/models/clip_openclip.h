/* Name mapping shared by the OpenCLIP text and visual towers (OpenCLIP -> transformers CLIP names, as
 * diffusers v0.27.2 single_file_utils.convert_open_clip_checkpoint does for the text tower). */
#ifndef TDM_MODELS_CLIP_OPENCLIP_H
#define TDM_MODELS_CLIP_OPENCLIP_H

#include "io/weights.h"

/* TDM_ERR_FORMAT "<ws->what>: <file>: tensor '<name>' <why>". */
tdm_code tdm_openclip_bad_name(tdm_weights *ws, const char *name, const char *why, tdm_status *st);

/* Emits the transpose of a contiguous 2-D float tensor [r, c] as `out` [c, r] (storage owned by ws);
 * `name` is the source name for errors. */
tdm_code tdm_openclip_emit_transposed(tdm_weights *ws, const char *out, const char *name, const tdm_tensor *t,
                                      tdm_status *st);

/* Splits "transformer.resblocks.N.<tail>" into N and tail; any other name fails with
 * tdm_openclip_bad_name(ws, name, unknown). */
tdm_code tdm_openclip_resblock(tdm_weights *ws, const char *name, const char *unknown, long *layer,
                               const char **tail, tdm_status *st);

/* Emits resblock `layer`'s tensor `tail` under "<layers_prefix><layer>.": ln_1/ln_2 -> layer_norm1/2,
 * attn.in_proj_weight/bias (q | k | v stacked on dim 0) -> self_attn.{q,k,v}_proj views,
 * attn.out_proj -> self_attn.out_proj, mlp.c_fc/c_proj -> mlp.fc1/fc2. Any other tail fails with
 * tdm_openclip_bad_name(ws, name, unknown). */
tdm_code tdm_openclip_emit_resblock(tdm_weights *ws, const char *name, const char *layers_prefix, long layer,
                                    const char *tail, const tdm_tensor *t, const char *unknown, tdm_status *st);

#endif
