/* Runs forever without a system call: only the timer can take the CPU away from it. */
#include "user.h"

volatile unsigned int counter;

int main(void) {
  for (;;) counter++;
}
