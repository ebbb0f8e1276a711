/**
 * Watches a guest's serial output for the workload's markers: "BEGIN\n" when the measured part
 * starts and "END <checksum>\n" when it ends (workload/workload.c).
 */
export class MarkerWatcher {
  private line = '';
  checksum: string | undefined;

  constructor(
    private readonly onBegin: () => void,
    private readonly onEnd: (checksum: string) => void,
  ) {}

  byte(b: number): void {
    if (b !== 0x0a) {
      this.line += String.fromCharCode(b);
      return;
    }
    const line = this.line;
    this.line = '';
    if (line === 'BEGIN') this.onBegin();
    else if (line.startsWith('END ')) {
      this.checksum = line.slice(4);
      this.onEnd(this.checksum);
    }
  }
}
