/* Calibration of the adaptive pipeline's threshold: tau_k = numpy.percentile(oracle scores of student
 * samples, k). Public API in tandem.h (tdm_percentile_sorted, tdm_calibration_*, tdm_calibrate);
 * internals (the calibration struct, prompts files, SHA-256) in pipeline/adaptive.h; the file format in
 * docs/ADAPTIVE.md. */
#ifndef TDM_PIPELINE_CALIBRATE_H
#define TDM_PIPELINE_CALIBRATE_H

#include "pipeline/adaptive.h"

#define TDM_CALIBRATION_FORMAT "tandem-calibration"
#define TDM_CALIBRATION_VERSION 1

/* Validates k for a percentile threshold: finite and 0 < k < 100. */
tdm_code tdm_calibration_check_k(double k, tdm_status *st);

#endif
