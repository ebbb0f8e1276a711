/*
 * Raw frames from a program: system call sendframe(buf, len) hands a whole Ethernet frame to the
 * NIC, as a packet socket does. The driver reuse benchmark's flooding client is such a program
 * (user/flood.c): it builds its own IPv4/UDP datagrams, with its own address, and sends them as
 * fast as the transmit ring takes them.
 *
 * The first frame sent puts the interface in raw mode: the program owns it, so the kernel's own
 * stack (net.c: ARP, IPv4, TCP, all for 10.0.2.15) takes no frame any more; everything received
 * is dropped. Two clients of one driver VM see each other's broadcasts, the peer's ARP requests
 * among them, and only one of them may answer for 10.0.2.15.
 *
 * The kernel writes the NIC's MAC into the frame's source field (in the program's buffer, which
 * the driver copies from): a program cannot pose as another station. The code is in a file of
 * its own, linked last, and runs only when a program sends, so that nothing else of the kernel
 * moves or runs differently (the figures of every other run stay what they were).
 */
#include "defs.h"
#include "net.h"
#include "syscall.h"

static int raw_mode;

/* In raw mode every frame from the wire is the program's business, and no program reads. */
static void raw_receive(const u8 *frame, u32 len) {}

/* GUEST-CONTROLLED (ring 3): `frame` is a checked, writable user buffer of `len` bytes. 0 when
 * the NIC has the frame, -EAGAIN when its transmit ring is full (the program may try again). */
int net_send_raw(u8 *frame, u32 len) {
  const u8 *mac = dp83820_mac();
  if (!mac) return -ENETDOWN;
  if (len < ETH_HLEN || len > ETH_HLEN + NET_MTU) return -EINVAL;
  if (!raw_mode) {
    raw_mode = 1;
    dp83820_set_receiver(raw_receive);
  }
  for (int k = 0; k < 6; k++) frame[6 + k] = mac[k];
  return dp83820_send(frame, len);
}
