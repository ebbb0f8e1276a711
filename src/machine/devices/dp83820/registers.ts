/**
 * DP83820 register offsets and bits (shared/reference/dp83820.md, section 2; sources: Linux
 * ns83820.c, gem5 ns_gige_reg.h, NetBSD if_sipreg.h, FreeBSD if_ngereg.h).
 */
export const REG = {
  CR: 0x00,
  CFG: 0x04,
  MEAR: 0x08,
  PTSCR: 0x0c,
  ISR: 0x10,
  IMR: 0x14,
  IER: 0x18,
  IHR: 0x1c,
  TXDP: 0x20,
  TXDP_HI: 0x24,
  TXCFG: 0x28,
  GPIOR: 0x2c,
  RXDP: 0x30,
  RXDP_HI: 0x34,
  RXCFG: 0x38,
  PQCR: 0x3c,
  WCSR: 0x40,
  PCR: 0x44,
  RFCR: 0x48,
  RFDR: 0x4c,
  BRAR: 0x50,
  BRDR: 0x54,
  SRR: 0x58,
  MIBC: 0x5c,
  MIB_FIRST: 0x60,
  MIB_LAST: 0x88,
  VRCR: 0xbc,
  VTCR: 0xc0,
  VDR: 0xc4,
  CCSR: 0xcc,
  TBICR: 0xe0,
  TBISR: 0xe4,
  TANAR: 0xe8,
  TANLPAR: 0xec,
  TANER: 0xf0,
  TESR: 0xf4,
} as const;

export const CR = {
  TXE: 0x1,
  TXD: 0x2,
  RXE: 0x4,
  RXD: 0x8,
  TXR: 0x10,
  RXR: 0x20,
  SWI: 0x80,
  RST: 0x100,
} as const;

export const CFG = {
  LNKSTS: 0x80000000,
  SPDSTS1: 0x40000000,
  SPDSTS0: 0x20000000,
  DUPSTS: 0x10000000,
  TBI_EN: 0x01000000,
  MODE_1000: 0x00400000,
  PCI64_DET: 0x00002000,
  T64ADDR: 0x00004000,
  M64ADDR: 0x00000800,
  EXTSTS_EN: 0x00000100,
} as const;

/** CFG bits the hardware drives; writes do not change them. */
export const CFG_READ_ONLY = 0xfe000000 | CFG.PCI64_DET | CFG.T64ADDR;

export const ISR = {
  RXOK: 1 << 0,
  RXDESC: 1 << 1,
  RXERR: 1 << 2,
  RXIDLE: 1 << 4,
  RXORN: 1 << 5,
  TXOK: 1 << 6,
  TXDESC: 1 << 7,
  TXERR: 1 << 8,
  TXIDLE: 1 << 9,
  TXURN: 1 << 10,
  MIB: 1 << 11,
  SWI: 1 << 12,
  PHY: 1 << 14,
  RXSOVR: 1 << 16,
  RMABT: 1 << 18,
  RXRCMP: 1 << 21,
  TXRCMP: 1 << 22,
} as const;

export const CMDSTS = {
  OWN: 0x80000000,
  MORE: 0x40000000,
  INTR: 0x20000000,
  OK: 0x08000000,
  SIZE: 0xffff,
  /** RX: destination class bits 24:23. */
  DEST_UNICAST: 0x00800000,
  DEST_MULTICAST: 0x01000000,
  DEST_BROADCAST: 0x01800000,
  RX_LONG: 0x00400000,
  RX_RUNT: 0x00200000,
  RX_CRCE: 0x00080000,
  RX_OVERRUN: 0x02000000 | 0x04000000,
  TX_ABORT: 0x04000000,
} as const;

export const RFCR = {
  RFEN: 0x80000000,
  AAB: 0x40000000,
  AAM: 0x20000000,
  AAU: 0x10000000,
  APM: 0x08000000,
  AARP: 0x00400000,
  ADDR: 0x3ff,
} as const;

export const MEAR = { EEDI: 0x1, EEDO: 0x2, EECLK: 0x4, EESEL: 0x8 } as const;

export const PTSCR = {
  EEBIST_EN: 0x2,
  EELOAD_EN: 0x4,
  RBIST_DONE: 0x200,
  RBIST_EN: 0x400,
  RBIST_RST: 0x2000,
} as const;

export const TBI = {
  AN_ENABLE: 0x1000,
  RESTART_AN: 0x200,
  AN_COMPLETE: 0x4,
  LINK_STATUS: 0x20,
  FULL_DUP: 0x20,
  HALF_DUP: 0x40,
} as const;
