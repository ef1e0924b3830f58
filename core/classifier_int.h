/* Private: the classifier's loss, shared by core/classifier.c and its test.
 * Never installed. */
#ifndef AGON_CLASSIFIER_INT_H
#define AGON_CLASSIFIER_INT_H

#include <stdint.h>

#include "agon/export.h"

/* Softmax cross-entropy of n rows of k logits against labels[0..n) (each
 * in 0..k-1): returns the batch mean of -log softmax(logits_i)[labels_i]
 * and, when dlogits is not NULL, writes its exact gradient
 * (softmax(logits_i) - onehot(labels_i)) / n.  Computed in double with the
 * row maximum subtracted, so large logits do not overflow.  Exported only
 * so that tests/test_classifier.c can check it against finite differences. */
AGON_API double agon__softmax_xent(const float *logits, const int32_t *labels, int64_t n,
                                   int64_t k, float *dlogits);

#endif /* AGON_CLASSIFIER_INT_H */
