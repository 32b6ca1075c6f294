// @ts-check
import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '.bulwark/**',
      'coverage/**',
      'packages/*/bin/**',
      'packages/*/dist/**',
      'packages/console/.dist-*/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A module's index.ts is its only door: import `../pki/index.ts`, never `../pki/ca.ts`.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../*/*', '!../*/index.ts', '!../test-support/*', '../../*/src/*'],
              message: 'Import another module only through its index.ts.',
            },
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: 'TSEnumDeclaration', message: 'Use an `as const` array and its union instead of enum.' },
      ],
    },
  },
  {
    // process.env is read in config/ only (and by test helpers that locate test servers).
    files: ['packages/server/src/**/*.ts'],
    ignores: [
      'packages/server/src/config/**',
      'packages/server/src/**/*.test.ts',
      'packages/server/src/test-support/**',
    ],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read configuration through config/.' },
      ],
    },
  },
  {
    // Small units (issue 13): a factory closure holding a whole service counts as one function.
    files: ['packages/*/src/**/*.{ts,tsx}'],
    ignores: ['**/*.test.ts', '**/test-support/**'],
    rules: {
      'max-lines-per-function': ['error', { max: 150 }],
      complexity: ['error', 25],
      'max-params': ['error', 3],
      '@typescript-eslint/no-non-null-assertion': 'error',
    },
  },
  {
    // Subjects and actors are written and read only by events/subject.ts; event data is typed, never cast.
    files: ['packages/server/src/**/*.ts'],
    ignores: ['**/*.test.ts', '**/test-support/**', 'packages/server/src/events/subject.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        { selector: 'TSEnumDeclaration', message: 'Use an `as const` array and its union instead of enum.' },
        {
          selector:
            "CallExpression[callee.property.name='startsWith'] > Literal[value=/^(device|user|app|channel|policy|zone|rollout|alert):$/]",
          message: 'Parse subjects with parseSubject/deviceIdOf from events/index.ts.',
        },
        {
          selector: 'TemplateElement[value.raw=/(^|[^A-Za-z0-9_:-])(device|user|app|channel|rollout):$/]',
          message: 'Write subjects and actors with subjectOf/actorOf from events/index.ts.',
        },
        {
          selector:
            "TSAsExpression > MemberExpression[property.name='data'][object.name=/^(e|entry|event)$/]",
          message: 'Event data is typed by its event type: narrow on entry.type, do not cast.',
        },
      ],
    },
  },
  {
    // The web console runs in a browser and talks to the HTTP API only (DESIGN.md): no Node.js modules, no server
    // code; only @bulwark/protocol's contracts. Hooks are checked by the React team's rules.
    files: ['packages/console/src/**/*.{ts,tsx}'],
    ...reactHooks.configs.flat['recommended-latest'],
  },
  {
    files: ['packages/console/src/**/*.{ts,tsx}'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', '@bulwark/server', '@bulwark/device', '**/server/**', '**/device/**'],
              message: 'The console talks to the HTTP API only.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
