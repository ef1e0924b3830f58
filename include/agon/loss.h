/* agon/loss.h — numerics shared by GAN losses on discriminator logits.
 *
 * A discriminator outputs a logit l; D = sigmoid(l).  Losses are written
 * with softplus so that nothing overflows and no log sees 0:
 *     log D(l)      = -softplus(-l)
 *     log(1 - D(l)) = -softplus(l)
 */
#ifndef AGON_LOSS_H
#define AGON_LOSS_H

#include <stddef.h>

#include "agon/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* softplus(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|): finite
 * for every finite x. */
AGON_API double agon_softplus(double x);

/* sigmoid(x) = 1 / (1 + e^-x), evaluating exp of non-positive numbers only,
 * so x = +-1000 gives exactly 1 or 0. */
AGON_API double agon_sigmoid(double x);

/* The discriminator's loss of the GAN value function
 *     V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]:
 * D maximises V, i.e. minimises
 *     L_D = mean_real softplus(-l_r) + mean_fake softplus(l_f),
 * with dL_D/dl_r = -(1 - D(l_r)) / n_real and dL_D/dl_f = D(l_f) / n_fake.
 * Returns L_D; writes the gradients when d_real / d_fake are not NULL.  An
 * empty half contributes nothing.  The signature is that of
 * agon_loss_vtable.d_loss, so a loss plugin can use it as it is. */
AGON_API double agon_gan_d_loss(const float *real_logits, size_t n_real,
                                const float *fake_logits, size_t n_fake,
                                float *d_real, float *d_fake);

#ifdef __cplusplus
}
#endif

#endif /* AGON_LOSS_H */
