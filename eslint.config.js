// Lint rules, including the layering of DESIGN.md: dependencies point downwards only,
// x86 <- machine <- (net, loader, snapshot, hypervisor, vmm) <- platforms <- (cli, bench, web);
// the afterburner stands alone. net is the simulated peer machine on the far end of the
// Ethernet link; snapshot is the snapshot file format (the typed state of the CPU, the machine
// and the clock; hypervisor and VMM state reach it as data, so it imports nothing above
// machine); platforms is the one way to build a guest (createGuest and its platform entries).
// Within vmm, only the backends (src/vmm/backends) may import a hypervisor.
// That the core uses no Node API is the compiler's job (tsconfig.core.json); the built-in
// imports below only give an earlier, clearer message.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Import patterns a layer may not use, by folder. */
const forbidden = {
  x86: [
    '**/machine/**',
    '**/loader/**',
    '**/hypervisor/**',
    '**/vmm/**',
    '**/platforms/**',
    '**/snapshot/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  machine: [
    '**/net/**',
    '**/loader/**',
    '**/hypervisor/**',
    '**/vmm/**',
    '**/platforms/**',
    '**/snapshot/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  loader: [
    '**/hypervisor/**',
    '**/vmm/**',
    '**/platforms/**',
    '**/snapshot/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  net: [
    '**/loader/**',
    '**/hypervisor/**',
    '**/vmm/**',
    '**/platforms/**',
    '**/snapshot/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  snapshot: [
    '**/net/**',
    '**/loader/**',
    '**/hypervisor/**',
    '**/vmm/**',
    '**/platforms/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  hypervisor: [
    '**/vmm/**',
    '**/platforms/**',
    '**/snapshot/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  vmm: [
    '**/platforms/**',
    '**/snapshot/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  platforms: ['**/cli/**', '**/bench/**', '**/afterburner/**', '**/web/**'],
  web: ['**/cli/**', '**/afterburner/**'],
  afterburner: [
    '**/x86/**',
    '**/machine/**',
    '**/loader/**',
    '**/hypervisor/**',
    '**/vmm/**',
    '**/platforms/**',
    '**/snapshot/**',
    '**/cli/**',
    '**/bench/**',
    '**/web/**',
  ],
};
/** Layers that must run in a browser: no Node built-ins (as in tsconfig.core.json). */
const platformNeutral = [
  'x86',
  'machine',
  'net',
  'loader',
  'snapshot',
  'hypervisor',
  'vmm',
  'platforms',
];

/** Any Node built-in module, node:-prefixed or bare (fs, crypto, util, fs/promises, ...). */
const nodeBuiltin = `^(node:|(${builtinModules.join('|')})(/|$))`;

/** The no-restricted-imports patterns of one layer. */
function restrictions(layer) {
  return [
    {
      group: forbidden[layer],
      message: `src/${layer} may not import from a higher layer (DESIGN.md).`,
    },
    ...(platformNeutral.includes(layer)
      ? [
          {
            regex: nodeBuiltin,
            message: `src/${layer} must run in a browser: no Node built-ins.`,
          },
        ]
      : []),
  ];
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'build/', 'guest/', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...Object.keys(forbidden).map((layer) => ({
    files: [`src/${layer}/**/*.ts`],
    ignores: platformNeutral.includes(layer) ? ['src/**/*.test.ts'] : [],
    rules: { 'no-restricted-imports': ['error', { patterns: restrictions(layer) }] },
  })),
  // The VMM core knows no hypervisor (DESIGN.md decision 10): everything in src/vmm but its
  // backends. A later no-restricted-imports replaces an earlier one, so vmm's patterns repeat.
  {
    files: ['src/vmm/**/*.ts'],
    ignores: ['src/vmm/backends/**', 'src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...restrictions('vmm'),
            {
              group: ['**/hypervisor/**'],
              message:
                'The VMM core may not import a hypervisor; only src/vmm/backends may (DESIGN.md).',
            },
          ],
        },
      ],
    },
  },
);
