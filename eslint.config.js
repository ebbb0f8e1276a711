// Lint rules, including the layering of DESIGN.md: dependencies point downwards only,
// x86 <- machine <- (net, loader, hypervisor, vmm) <- (cli, bench, web); the afterburner stands
// alone. net is the simulated peer machine on the far end of the Ethernet link.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Import patterns a layer may not use, by folder. */
const forbidden = {
  x86: [
    '**/machine/**',
    '**/loader/**',
    '**/hypervisor/**',
    '**/vmm/**',
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
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  loader: [
    '**/hypervisor/**',
    '**/vmm/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  net: [
    '**/loader/**',
    '**/hypervisor/**',
    '**/vmm/**',
    '**/cli/**',
    '**/bench/**',
    '**/afterburner/**',
    '**/web/**',
  ],
  hypervisor: ['**/vmm/**', '**/cli/**', '**/bench/**', '**/afterburner/**', '**/web/**'],
  vmm: ['**/cli/**', '**/bench/**', '**/afterburner/**', '**/web/**'],
  afterburner: [
    '**/x86/**',
    '**/machine/**',
    '**/loader/**',
    '**/hypervisor/**',
    '**/vmm/**',
    '**/cli/**',
    '**/bench/**',
    '**/web/**',
  ],
};
/** Layers whose core must run in a browser: no Node built-ins. */
const platformNeutral = ['x86', 'machine', 'net', 'loader', 'hypervisor', 'vmm'];

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
  ...Object.entries(forbidden).map(([layer, patterns]) => ({
    files: [`src/${layer}/**/*.ts`],
    ignores: platformNeutral.includes(layer) ? ['src/**/*.test.ts'] : [],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: patterns,
              message: `src/${layer} may not import from a higher layer (DESIGN.md).`,
            },
            ...(platformNeutral.includes(layer)
              ? [
                  {
                    group: ['node:*', 'fs', 'path', 'os', 'child_process'],
                    message: `src/${layer} must run in a browser: no Node built-ins.`,
                  },
                ]
              : []),
          ],
        },
      ],
    },
  })),
);
