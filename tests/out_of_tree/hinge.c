/* hinge — the hinge loss of the geometric GAN (Lim and Ye, 2017) and
 * SN-GAN (Miyato et al., 2018), on discriminator logits l:
 *
 *   L_D = mean_real max(0, 1 - l_r) + mean_fake max(0, 1 + l_f)
 *   dL_D/dl_r = -1/n_real where l_r < 1, else 0
 *   dL_D/dl_f =  1/n_fake where l_f > -1, else 0
 *
 *   L_G = -mean_fake l_f,   dL_G/dl_f = -1/n
 *
 * At the kinks (l_r = 1, l_f = -1) the subgradient 0 is used.  Gradient
 * pointers may be NULL when only the value is wanted. */
#include "agon/plugin.h"

static double hinge_d_loss(const float *real_logits, size_t n_real,
                           const float *fake_logits, size_t n_fake, float *d_real,
                           float *d_fake)
{
    double real_sum = 0.0, fake_sum = 0.0;
    for (size_t i = 0; i < n_real; i++) {
        double margin = 1.0 - (double)real_logits[i];
        real_sum += margin > 0.0 ? margin : 0.0;
        if (d_real)
            d_real[i] = margin > 0.0 ? (float)(-1.0 / (double)n_real) : 0.0f;
    }
    for (size_t i = 0; i < n_fake; i++) {
        double margin = 1.0 + (double)fake_logits[i];
        fake_sum += margin > 0.0 ? margin : 0.0;
        if (d_fake)
            d_fake[i] = margin > 0.0 ? (float)(1.0 / (double)n_fake) : 0.0f;
    }
    double loss = 0.0;
    if (n_real > 0)
        loss += real_sum / (double)n_real;
    if (n_fake > 0)
        loss += fake_sum / (double)n_fake;
    return loss;
}

static double hinge_g_loss(const float *fake_logits, size_t n, float *d_fake)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum -= (double)fake_logits[i];
        if (d_fake)
            d_fake[i] = (float)(-1.0 / (double)n);
    }
    return n > 0 ? sum / (double)n : 0.0;
}

static const agon_loss_vtable hinge_vtable = {
    sizeof(agon_loss_vtable),
    hinge_d_loss,
    hinge_g_loss,
};

AGON_PLUGIN("hinge", "1.0.0", "Hinge GAN loss, built out of tree",
            AGON_LOSS("hinge", "D: max(0, 1 - l_r) + max(0, 1 + l_f); G: -l_f", NULL,
                      &hinge_vtable))
