/* Version information compiled into libagon (see agon/version.h). */
#include "agon/version.h"

extern const char agon__git_revision_string[];

const char *agon_version(void)
{
    return AGON_VERSION_STRING;
}

const char *agon_git_revision(void)
{
    return agon__git_revision_string;
}
