/* ph_ui.h - what tsunagu-phone shows: on a terminal, a screen redrawn five
 * times a second (members, call state, path, levels, quality) and keys
 * (m = mute, q = leave) read in raw mode; with --no-ui or without a
 * terminal, one plain status line per call per second on stderr, for tests
 * and scripts. Reads the phone's state, never changes it except through
 * the key callback. Main thread only. */
#ifndef PH_UI_H
#define PH_UI_H

#include "ph_phone.h"

typedef void (*ph_ui_key_fn)(phone *ph, int key);

void ph_ui_start(phone *ph, ph_ui_key_fn on_key);
/* Restores the terminal. */
void ph_ui_stop(phone *ph);
void ph_ui_second(phone *ph);
void ph_ui_draw(phone *ph);
/* At the end, on stdout: one line per call and the process's CPU. */
void ph_ui_summary(phone *ph);

#endif
