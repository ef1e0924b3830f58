/* nonsaturating — the GAN loss with the generator's "-log D trick"
 * (Goodfellow et al. 2014, section 3), the usual choice in practice.
 *
 *   V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],   D = agon_sigmoid(l)
 *
 * Everything is computed from discriminator logits l with
 *   log D(l)     = -agon_softplus(-l)
 *   log(1 - D(l)) = -agon_softplus(l)
 *   softplus(x)  = max(x, 0) + log1p(exp(-|x|))
 * so that no exp() can overflow and log() never sees 0.
 *
 * Discriminator loss (the same as minimax: D minimises -V):
 *   L_D = -mean_real log D(l_r) - mean_fake log(1 - D(l_f))
 *       =  mean_real softplus(-l_r) + mean_fake softplus(l_f)
 *   dL_D/dl_r = -sigmoid(-l_r) / n_real = -(1 - D(l_r)) / n_real
 *   dL_D/dl_f =  sigmoid(l_f)  / n_fake =  D(l_f) / n_fake
 *
 * Generator loss: instead of minimising log(1 - D(G(z))), G maximises
 * log D(G(z)), which has the same fixed point but strong gradients when D
 * confidently rejects the fakes:
 *   L_G = -mean_fake log D(l_f) = mean_fake softplus(-l_f)
 *   dL_G/dl_f = -sigmoid(-l_f) / n = -(1 - D(l_f)) / n
 *
 * At D = 0.01 the per-sample derivative is -0.99 (minimax gives -0.01).
 *
 * Gradient pointers may be NULL when only the value is wanted.
 */
#include "agon/loss.h"
#include "agon/plugin.h"

static double nonsaturating_g_loss(const float *fake_logits, size_t n, float *d_fake)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double l = fake_logits[i];
        sum += agon_softplus(-l);
        if (d_fake)
            d_fake[i] = (float)(-agon_sigmoid(-l) / (double)n);
    }
    return n > 0 ? sum / (double)n : 0.0;
}

static const agon_loss_vtable nonsaturating_vtable = {
    sizeof(agon_loss_vtable),
    agon_gan_d_loss, /* the value function's D loss, from libagon */
    nonsaturating_g_loss,
};

AGON_PLUGIN("nonsaturating", "1.0.0",
            "Non-saturating GAN loss: G minimises -log D(G(z))",
            AGON_LOSS("nonsaturating",
                      "G minimises -log D(G(z)); strong gradients when D rejects fakes",
                      NULL, &nonsaturating_vtable));
