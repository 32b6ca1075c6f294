// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['**/node_modules/**', '.bulwark/**', 'coverage/**', 'packages/*/bin/**', 'packages/*/dist/**'],
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
    files: ['**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
