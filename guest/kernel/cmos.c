/*
 * The CMOS real-time clock (Motorola MC146818 register layout; ports 0x70 index, 0x71 data).
 * Read once at boot; time() adds the ticks since.
 */
#include "defs.h"
#include "x86.h"

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define RTC_SEC 0x00
#define RTC_MIN 0x02
#define RTC_HOUR 0x04
#define RTC_DAY 0x07
#define RTC_MON 0x08
#define RTC_YEAR 0x09
#define RTC_STATUS_A 0x0a
#define RTC_STATUS_B 0x0b
#define STATUS_A_UIP 0x80   /* update in progress: the registers are changing */
#define STATUS_B_BINARY 0x04
#define STATUS_B_24H 0x02

static u8 cmos_read(u8 reg) {
  outb(CMOS_INDEX, reg);
  return inb(CMOS_DATA);
}

static u32 bcd(u8 v, int binary) { return binary ? v : (v >> 4) * 10 + (v & 0x0f); }

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static u32 days_from_civil(u32 y, u32 m, u32 d) {
  y -= m <= 2;
  u32 era = y / 400, yoe = y - era * 400;
  u32 doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  u32 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Seconds since 1970, or 0 if there is no sensible clock. */
u32 cmos_time(void) {
  int i = 0;
  while ((cmos_read(RTC_STATUS_A) & STATUS_A_UIP) && i < 100000) i++;
  if (i == 100000) return 0; /* the update never ends: no RTC on this machine */
  u8 b = cmos_read(RTC_STATUS_B);
  int bin = b & STATUS_B_BINARY;
  u32 sec = bcd(cmos_read(RTC_SEC), bin), min = bcd(cmos_read(RTC_MIN), bin);
  u8 rawh = cmos_read(RTC_HOUR);
  u32 hour = bcd(rawh & 0x7f, bin);
  if (!(b & STATUS_B_24H) && (rawh & 0x80)) hour = (hour % 12) + 12; /* 12-hour clock, PM */
  u32 day = bcd(cmos_read(RTC_DAY), bin), mon = bcd(cmos_read(RTC_MON), bin);
  u32 year = bcd(cmos_read(RTC_YEAR), bin) + 2000;
  if (sec > 59 || min > 59 || hour > 23 || day < 1 || day > 31 || mon < 1 || mon > 12) return 0;
  return days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
}
