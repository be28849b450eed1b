/* rly_main.h - the relay's entry point; the settings table (shared with
 * the conf-sample test) is rly_settings.h's. */
#ifndef RLY_MAIN_H
#define RLY_MAIN_H

#include "rly_settings.h"

/* The whole program; returns the exit status (0 clean stop or drained,
 * 1 runtime failure, 2 bad settings). */
int rly_main(int argc, char **argv);

#endif
