/* main.c - tsunagu-relay entry point; everything else is in rly_main.c so
 * tests can link the settings table. */
#include "rly_main.h"

int main(int argc, char **argv) { return rly_main(argc, argv); }
