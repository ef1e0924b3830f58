/* agon/classifier.h — the domain classifier behind the image metrics.
 *
 * `agon classifier train experiments/classifiers/fmnist.yaml` trains a small
 * CNN built from agon's own layers on a labelled image dataset and saves it
 * as one HDF5 file.  Metrics (frechet, precision_recall, classifier_score,
 * class_modes) load that file by path and use its penultimate layer as
 * features and its softmax as p(y|x).  The file's SHA-256 identifies the
 * feature extractor in every metric value it feeds.
 *
 * The network (every size comes from the file):
 *   conv k4 s2 p1 (C -> c1), leaky ReLU,
 *   conv k4 s2 p1 (c1 -> c2), batch norm, leaky ReLU,
 *   flatten, linear (-> features), batch norm, leaky ReLU   <- features
 *   linear (features -> n_classes)                          <- logits
 * docs/classifier.md describes the file layout and the training file.
 */
#ifndef AGON_CLASSIFIER_H
#define AGON_CLASSIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agon/config.h"
#include "agon/error.h"
#include "agon/export.h"
#include "agon/plugin.h"
#include "agon/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct agon_classifier agon_classifier;

/* Loads a classifier file and builds its network in evaluation mode for
 * batches of up to max_batch samples (agon_classifier_run chunks larger
 * inputs).  Errors are one line naming the path: missing file (with the
 * command that makes one), not HDF5, not a classifier, a layout this agon
 * cannot read (AGON_EIO or AGON_EDATA). */
AGON_API agon_classifier *agon_classifier_load(const char *path, int64_t max_batch,
                                               agon_error *err);
AGON_API void agon_classifier_destroy(agon_classifier *cls);

/* The path as given, and the lowercase hex SHA-256 of the file (borrowed). */
AGON_API const char *agon_classifier_path(const agon_classifier *cls);
AGON_API const char *agon_classifier_sha256(const agon_classifier *cls);
/* Per-sample input shape [C, H, W], class count, feature width. */
AGON_API const agon_shape *agon_classifier_input_shape(const agon_classifier *cls);
AGON_API int64_t agon_classifier_n_classes(const agon_classifier *cls);
AGON_API int64_t agon_classifier_feature_dim(const agon_classifier *cls);
/* Test accuracy measured when it was trained (0..1). */
AGON_API double agon_classifier_test_accuracy(const agon_classifier *cls);

/* Runs the network on x[n, C, H, W] (any n >= 1; x's per-sample shape must
 * equal the input shape, else AGON_EDATA naming both).  features[n,
 * feature_dim] and probs[n, n_classes] (softmax) are written when not
 * NULL.  Allocates nothing. */
AGON_API int agon_classifier_run(agon_classifier *cls, const agon_tensor *x, float *features,
                                 float *probs, agon_error *err);

/* What `agon classifier train` reports. */
typedef struct agon_classifier_report {
    int64_t epochs, train_samples, test_samples;
    double test_accuracy;   /* 0..1 */
    double seconds;
    char output_path[4096];
} agon_classifier_report;

/* Trains a classifier as the YAML file at `path` describes (with the
 * "key.path=value" overrides in `sets`), taking the dataset and optimizer
 * plugins from `reg`, and writes it to output_path (NULL: the file's
 * `output` key).  Validation errors are positioned lines in diag (with
 * err->code set); everything else is one line in err.  An existing output
 * is replaced only when `overwrite`.  `progress` may be NULL; it receives
 * one line per epoch, without newline. */
AGON_API int agon_classifier_train_file(agon_registry *reg, const char *path,
                                        const char *const *sets, size_t n_sets,
                                        const char *output_path, bool overwrite,
                                        void (*progress)(const char *line, void *user),
                                        void *user, agon_classifier_report *report,
                                        agon_diag *diag, agon_error *err);

#ifdef __cplusplus
}
#endif

#endif /* AGON_CLASSIFIER_H */
