// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Imports that make code run in a process other than its folder's. STYLE.md rule 1. */
const node = { group: ['node:*', 'fs', 'path', 'os', 'crypto', 'http', 'https', 'net', 'child_process', 'worker_threads'], message: 'Node built-ins belong to main/ or server/.' };
const electron = { group: ['electron', 'electron/*'], message: 'Electron belongs to main/ and preload/ only.' };
const serverCode = { group: ['@herald/server', '**/server/**'], message: 'The server ships separately; import @herald/protocol instead.' };
const appCode = { group: ['**/main/**', '**/preload/**', '**/renderer/**'], message: 'Desktop-app code does not belong here.' };
const serverDeps = { group: ['better-sqlite3', 'pg', 'ioredis', 'amqplib', 'pino', 'prom-client'], message: 'Server dependencies must not reach the installer.' };

const boundary = (files, ...patterns) => ({
  files,
  rules: { 'no-restricted-imports': ['error', { patterns }] },
});

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'herald-data/**', 'coverage/**'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.strictTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      // Typed response helpers (`api<T>()`) are clearer than casts at every call site.
      '@typescript-eslint/no-unnecessary-type-parameters': 'off',
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true }],
    },
  },
  { files: ['**/*.js', '**/*.mjs'], languageOptions: { globals: globals.node } },
  boundary(['protocol/**'], node, electron, serverCode, appCode, serverDeps),
  boundary(['renderer/**'], node, electron, serverCode, serverDeps),
  boundary(['preload/**'], node, serverCode, serverDeps, { group: ['**/main/**', '**/renderer/**'], message: 'preload talks to main only over IPC.' }),
  boundary(['main/**'], serverCode, serverDeps, { group: ['**/renderer/**', '**/preload/**'], message: 'main talks to windows only over IPC.' }),
  boundary(['server/**'], electron, appCode),
);
