/* main.c - tsunagu-relay entry point; everything else is in the library so
 * tests can link the settings table. */
#include "rly_main.h"

int main(int argc, char **argv) { return rly_main(argc, argv); }
