#include "pipeline/check.h"

tdm_code tdm_check_vae(tdm_check *c, tdm_status *st) {
    return tdm_fail(st, TDM_ERR_UNSUPPORTED, "%s: not implemented yet", c->dir);
}
