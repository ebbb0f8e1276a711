/* Sleeps for the given number of milliseconds (default 1000), then exits. */
#include "user.h"

int main(int argc, char **argv) {
  return sleep(argc > 1 ? (unsigned int)atoi(argv[1]) : 1000) == 0 ? 0 : 1;
}
