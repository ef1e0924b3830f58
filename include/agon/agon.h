/* agon/agon.h — umbrella header: everything a plugin or an embedding
 * program may use. */
#ifndef AGON_AGON_H
#define AGON_AGON_H

#include "agon/config.h"
#include "agon/error.h"
#include "agon/export.h"
#include "agon/log.h"
#include "agon/loss.h"
#include "agon/nn.h"
#include "agon/optim.h"
#include "agon/plugin.h"
#include "agon/rng.h"
#include "agon/run.h"
#include "agon/sampler.h"
#include "agon/tensor.h"
#include "agon/version.h"

#endif /* AGON_AGON_H */
