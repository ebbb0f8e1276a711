/* Prints the wall-clock time (seconds since 1970, from the CMOS clock) and the uptime. */
#include "user.h"

int main(void) {
  unsigned int t = time(), up = uptime();
  printf("time %u s since 1970, up %u.%03u s\n", t, up / 1000, up % 1000);
  return 0;
}
