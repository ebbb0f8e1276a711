import assert from 'node:assert/strict';
import {
  createL4Machine,
  type L4Machine,
  type L4MachineConfig,
} from '../../../src/hypervisor/l4/machine.ts';
import type { L4State } from '../../../src/hypervisor/l4/state.ts';
import type { MachineState } from '../../../src/machine/machineState.ts';
import { buildL4Guest } from './build.ts';

/** A machine with the microkernel and its console collected. */
export interface Booted extends L4Machine {
  console: () => string;
}

export function boot(config: L4MachineConfig): Booted {
  let out = '';
  const m = createL4Machine({
    machine: { memoryMb: 64 },
    ...config,
    console: (b) => {
      out += String.fromCharCode(b);
    },
  });
  if (typeof m === 'string') throw new Error(m);
  return { ...m, console: () => out };
}

/** The whole-system guest's configuration: one VM of 4 MB with the PIT (ports, IRQ 0). */
export function systemConfig(): L4MachineConfig {
  return {
    vms: [
      {
        image: buildL4Guest('system'),
        imageName: 'system.elf',
        memoryBytes: 4 << 20,
        devices: [{ name: 'pit', ioPorts: [{ base: 0x40, length: 4 }], irqs: [0] }],
      },
    ],
  };
}

/** A machine with no VM: the roots only. */
export function bare(memoryMb = 64): Booted {
  return boot({ machine: { memoryMb } });
}

export function audit(m: L4Machine): void {
  assert.deepEqual(m.l4.audit(), []);
}

/** The machine and the kernel as JSON data, as a snapshot file holds them. */
export function snapshot(m: L4Machine): { machine: MachineState; l4: L4State } {
  return JSON.parse(JSON.stringify({ machine: m.machine.save(), l4: m.l4.save() })) as {
    machine: MachineState;
    l4: L4State;
  };
}

/** A fresh build of `config` with a snapshot put back (the machine, then the kernel). */
export function restored(config: L4MachineConfig, s: ReturnType<typeof snapshot>): Booted {
  const m = boot(config);
  m.machine.restore(s.machine, () => m.l4.restore(s.l4, 'hypervisor'));
  m.machine.resume();
  return m;
}
