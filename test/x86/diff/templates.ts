/**
 * Instruction forms for the differential test against the host CPU. Each template is one
 * instruction in AT&T syntax; the harness sets EAX, EBX, ECX, EDX, ESI, EDI and the six status
 * flags to random values, runs it, and compares registers, flags and a 16-byte memory operand
 * `buf` (addressed as `(%edi)`: EDI always points at it).
 *
 * `undefinedFlags`: the flags the SDM leaves undefined for the form (Vol. 2 instruction pages,
 * "Flags Affected"), masked before comparing. `setup` constrains inputs (divisors, counts).
 */
export const CF = 0x1;
export const PF = 0x4;
export const AF = 0x10;
export const ZF = 0x40;
export const SF = 0x80;
export const OF = 0x800;

export interface Template {
  asm: string;
  undefinedFlags: number;
  /** 'div32' etc.: keep the quotient in range so the case does not raise #DE. */
  setup?: 'div8' | 'div16' | 'div32' | 'idiv8' | 'idiv16' | 'idiv32' | 'string' | 'xlat';
}

const templates: Template[] = [];
const add = (asm: string, undefinedFlags = 0, setup?: Template['setup']): void => {
  templates.push({ asm, undefinedFlags, setup });
};

// The eight ALU operations in every size and operand direction, plus immediates.
for (const op of ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp']) {
  const af = op === 'and' || op === 'or' || op === 'xor' ? AF : 0;
  add(`${op}l %ebx, %eax`, af);
  add(`${op}w %bx, %ax`, af);
  add(`${op}b %bl, %al`, af);
  add(`${op}b %bh, %ch`, af);
  add(`${op}l (%edi), %edx`, af);
  add(`${op}l %ecx, 4(%edi)`, af);
  add(`${op}w %si, 2(%edi)`, af);
  add(`${op}b $0x7f, %dl`, af);
  add(`${op}l $0x12345678, %esi`, af);
  add(`${op}l $-3, %eax`, af);
  add(`${op}l $0x12345678, %eax`, af); // the accumulator form (05, 0D, ... 3D)
  add(`${op}w $0x8001, %cx`, af);
  add(`${op}b $0x80, 1(%edi)`, af);
  add(`${op}l $-3, 8(%edi)`, af); // 83 /r on memory (AluMR, AluRM in blocks)
}
for (const op of ['inc', 'dec', 'neg', 'not']) {
  add(`${op}l %eax`);
  add(`${op}w %bx`);
  add(`${op}b %cl`);
  add(`${op}b %dh`);
  add(`${op}l 8(%edi)`);
}
for (const op of ['test']) {
  add(`${op}l %ebx, %eax`, AF);
  add(`${op}w $0x8000, %cx`, AF);
  add(`${op}b %al, %ah`, AF);
  // The 8- and 16-bit forms blocks write out: accumulator, memory, immediates.
  add(`${op}b $0x81, %al`, AF);
  add(`${op}w $0x8001, %ax`, AF);
  add(`${op}b $0x40, 1(%edi)`, AF);
  add(`${op}w %si, 2(%edi)`, AF);
  add(`${op}b %dh, %bl`, AF);
}
// 8- and 16-bit ALU forms with a memory source, and on the accumulator (blocks: AluSized).
for (const op of ['add', 'adc', 'sbb', 'and', 'cmp']) {
  const af = op === 'and' ? AF : 0;
  add(`${op}b 1(%edi), %ah`, af);
  add(`${op}w 2(%edi), %si`, af);
  add(`${op}b $0x7f, %al`, af);
  add(`${op}w $-5, %dx`, af);
  add(`${op}b %dl, 3(%edi)`, af);
}
// Shifts and rotates: by 1, by CL (any count), by immediates; OF is undefined unless the
// count is 1, AF undefined for shifts.
for (const op of ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sar']) {
  const shiftAf = op.startsWith('s') ? AF : 0;
  for (const size of [
    ['l', '%eax'],
    ['w', '%bx'],
    ['b', '%dl'],
  ]) {
    add(`${op}${size[0]} $1, ${size[1]}`, shiftAf);
    add(`${op}${size[0]} %cl, ${size[1]}`, shiftAf | OF);
    add(`${op}${size[0]} $5, ${size[1]}`, shiftAf | OF);
  }
  add(`${op}l %cl, 4(%edi)`, shiftAf | OF);
  // Blocks write these out inline (32 bits): a count of 0 changes no flag, counts are masked
  // to 5 bits (33 is 1, so OF is defined), by 1 and an immediate on memory.
  add(`${op}l $0, %esi`);
  add(`${op}l $33, %edx`, shiftAf);
  add(`${op}l $31, %ebx`, shiftAf | OF);
  add(`${op}l 8(%edi)`, shiftAf);
  add(`${op}l $9, 12(%edi)`, shiftAf | OF);
}
for (const op of ['shld', 'shrd']) {
  add(`${op}l $7, %ebx, %eax`, AF | OF);
  add(`${op}l %cl, %ebx, %eax`, AF | OF);
  add(`${op}w $3, %bx, %ax`, AF | OF);
  add(`${op}l $1, %esi, (%edi)`, AF);
}
// Multiply and divide.
add('mull %ebx', SF | ZF | AF | PF);
add('mulw %bx', SF | ZF | AF | PF);
add('mulb %bl', SF | ZF | AF | PF);
add('imull %ebx', SF | ZF | AF | PF);
add('imulw %bx', SF | ZF | AF | PF);
add('imulb %bl', SF | ZF | AF | PF);
add('imull %ebx, %eax', SF | ZF | AF | PF);
add('imull $100000, %ebx, %eax', SF | ZF | AF | PF);
add('imull $-7, %ecx, %edx', SF | ZF | AF | PF);
add('imulw %bx, %cx', SF | ZF | AF | PF);
add('imull $-1000, %esi, %edx', SF | ZF | AF | PF);
add('imull $7, (%edi), %ecx', SF | ZF | AF | PF);
add('divl %ebx', CF | OF | SF | ZF | AF | PF, 'div32');
add('divw %bx', CF | OF | SF | ZF | AF | PF, 'div16');
add('divb %bl', CF | OF | SF | ZF | AF | PF, 'div8');
add('idivl %ebx', CF | OF | SF | ZF | AF | PF, 'idiv32');
add('idivw %bx', CF | OF | SF | ZF | AF | PF, 'idiv16');
add('idivb %bl', CF | OF | SF | ZF | AF | PF, 'idiv8');
// BCD adjusts.
add('daa', OF);
add('das', OF);
add('aaa', OF | SF | ZF | PF);
add('aas', OF | SF | ZF | PF);
add('aam', OF | AF | CF);
add('aad', OF | AF | CF);
add('aam $7', OF | AF | CF);
// Bit operations.
for (const op of ['bt', 'bts', 'btr', 'btc']) {
  add(`${op}l %ebx, %eax`, OF | SF | AF | PF);
  add(`${op}w %bx, %ax`, OF | SF | AF | PF);
  add(`${op}l $13, %ecx`, OF | SF | AF | PF);
  add(`${op}l $45, (%edi)`, OF | SF | AF | PF);
}
add('bsfl %ebx, %eax', CF | OF | SF | AF | PF);
add('bsrl %ebx, %eax', CF | OF | SF | AF | PF);
add('bsfw %bx, %ax', CF | OF | SF | AF | PF);
add('bswap %eax');
add('bswap %esi');
// Exchange and compare.
add('xchgl %ebx, %eax');
add('xchgb %bl, %ah');
add('xchgl %ecx, (%edi)');
add('cmpxchgl %ebx, %ecx');
add('cmpxchgb %bl, %cl');
add('cmpxchgl %esi, (%edi)');
add('cmpxchg8b (%edi)');
add('xaddl %ebx, %eax');
add('xaddw %bx, %ax');
add('xaddl %ecx, 4(%edi)');
add('lock xaddl %ecx, 4(%edi)');
// Conditional moves and sets: every condition.
for (const cc of [
  'o',
  'no',
  'b',
  'ae',
  'e',
  'ne',
  'be',
  'a',
  's',
  'ns',
  'p',
  'np',
  'l',
  'ge',
  'le',
  'g',
]) {
  add(`cmov${cc}l %ebx, %eax`);
  add(`set${cc} %cl`);
}
// Moves and conversions.
add('movzbl %bl, %eax');
add('movzwl %bx, %eax');
add('movsbl %bh, %eax');
add('movswl (%edi), %ecx');
add('movzbl 1(%edi), %eax');
add('movzwl 2(%edi), %ecx');
add('movb %bh, 3(%edi)');
add('movb %cl, (%edi)');
add('movw %si, 6(%edi)');
add('movw $0x8765, 2(%edi)');
add('movw 4(%edi), %dx');
add('movb %ah, %dl');
add('movw %bx, %cx');
add('movb $0x9c, %dh');
add('nop');
// The hint-NOP space (0F 18 with memory, 0F 19-0F 1F): NOPs on a P6, ENDBR32 among them.
add('endbr32');
add('nopl 4(%edi)');
add('nopw (%edi,%ecx,2)');
add('prefetcht0 (%edi)');
add('prefetchnta 8(%edi)');
add('.byte 0x0f, 0x18, 0x27'); // 0F 18 /4 (%edi): a reserved hint NOP
add('.byte 0x0f, 0x19, 0x07'); // 0F 19 /0 (%edi)
add('.byte 0x0f, 0x1c, 0xc3'); // 0F 1C with a register operand
add('.byte 0x0f, 0x1d, 0x47, 0x04'); // 0F 1D /0 4(%edi)
add('xchgw %ax, %ax');
add('movsbw %dl, %si');
add('cbtw');
add('cwtl');
add('cwtd');
add('cltd');
add('leal 7(%ebx,%ecx,4), %eax');
add('leaw 3(%bx,%si), %ax');
add('lahf');
add('sahf');
add('xlat', 0, 'xlat');
add('cmc');
add('clc');
add('stc');
// Strings (EDI points at buf; ESI at buf+8; ECX small for REP).
add('movsb', 0, 'string');
add('movsl', 0, 'string');
add('rep movsb', 0, 'string');
add('rep stosl', 0, 'string');
add('rep stosw', 0, 'string');
add('lodsl', 0, 'string');
add('scasb', 0, 'string');
add('repe cmpsb', 0, 'string');
add('repne scasb', 0, 'string');
add('cmpsl', 0, 'string');

export const TEMPLATES: readonly Template[] = templates;
