/* Numerics shared by GAN losses on logits (see agon/loss.h). */
#include "agon/loss.h"

#include <math.h>

double agon_softplus(double x)
{
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

double agon_sigmoid(double x)
{
    if (x >= 0.0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

double agon_gan_d_loss(const float *real_logits, size_t n_real, const float *fake_logits,
                       size_t n_fake, float *d_real, float *d_fake)
{
    double real_sum = 0.0, fake_sum = 0.0;
    for (size_t i = 0; i < n_real; i++) {
        double l = real_logits[i];
        real_sum += agon_softplus(-l);
        if (d_real)
            d_real[i] = (float)(-agon_sigmoid(-l) / (double)n_real);
    }
    for (size_t i = 0; i < n_fake; i++) {
        double l = fake_logits[i];
        fake_sum += agon_softplus(l);
        if (d_fake)
            d_fake[i] = (float)(agon_sigmoid(l) / (double)n_fake);
    }
    double loss = 0.0;
    if (n_real > 0)
        loss += real_sum / (double)n_real;
    if (n_fake > 0)
        loss += fake_sum / (double)n_fake;
    return loss;
}
