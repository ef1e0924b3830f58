/* minimax — the original GAN loss of Goodfellow et al. (2014), in which the
 * generator minimises the value function itself (the "saturating" loss).
 *
 *   V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],   D = agon_sigmoid(l)
 *
 * Everything is computed from discriminator logits l with
 *   log D(l)     = -agon_softplus(-l)
 *   log(1 - D(l)) = -agon_softplus(l)
 *   softplus(x)  = max(x, 0) + log1p(exp(-|x|))
 * so that no exp() can overflow and log() never sees 0.
 *
 * Discriminator loss (D maximises V, so it minimises -V):
 *   L_D = -mean_real log D(l_r) - mean_fake log(1 - D(l_f))
 *       =  mean_real softplus(-l_r) + mean_fake softplus(l_f)
 *   dL_D/dl_r = -sigmoid(-l_r) / n_real = -(1 - D(l_r)) / n_real
 *   dL_D/dl_f =  sigmoid(l_f)  / n_fake =  D(l_f) / n_fake
 *
 * Generator loss (G minimises V; only the fake term depends on G):
 *   L_G = mean_fake log(1 - D(l_f)) = -mean_fake softplus(l_f)
 *   dL_G/dl_f = -sigmoid(l_f) / n = -D(l_f) / n
 *
 * The per-sample derivative -D vanishes exactly where the generator is
 * worst (D(G(z)) near 0, early in training): at D = 0.01 it is -0.01.  That
 * is the saturation the non-saturating loss (nonsaturating.c) avoids.
 *
 * Gradient pointers may be NULL when only the value is wanted.
 */
#include "agon/loss.h"
#include "agon/plugin.h"

static double minimax_g_loss(const float *fake_logits, size_t n, float *d_fake)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double l = fake_logits[i];
        sum -= agon_softplus(l);
        if (d_fake)
            d_fake[i] = (float)(-agon_sigmoid(l) / (double)n);
    }
    return n > 0 ? sum / (double)n : 0.0;
}

static const agon_loss_vtable minimax_vtable = {
    sizeof(agon_loss_vtable),
    agon_gan_d_loss, /* the value function's D loss, from libagon */
    minimax_g_loss,
};

AGON_PLUGIN("minimax", "1.0.0",
            "Original (saturating) GAN loss: G minimises log(1 - D(G(z)))",
            AGON_LOSS("minimax",
                      "G minimises log(1 - D(G(z))); saturates when D rejects fakes",
                      NULL, &minimax_vtable));
