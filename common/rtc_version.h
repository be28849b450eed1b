/* rtc_version.h - what this build is, for --version and the build_info
 * metric of the three programs.
 *
 * The version is meson's project version; the commit is `git describe
 * --always --dirty --tags` of the source tree at build time (meson's vcs_tag,
 * refreshed on every build), or "unknown" when the sources are not a git
 * checkout. Constant strings: any thread may read them. */
#ifndef RTC_VERSION_H
#define RTC_VERSION_H

#include <stdio.h>

const char *rtc_version(void);        /* "0.1.0" */
const char *rtc_version_commit(void); /* "b38d506-dirty", "v0.1.0-3-gabc1234", "unknown" */

/* "<prog> <version> (<commit>)\n", the --version line. */
void rtc_version_print(FILE *f, const char *prog);

#endif
