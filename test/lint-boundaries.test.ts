import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

// Each folder's code runs in one process; lint is what enforces it (STYLE.md rule 1).
const eslint = new ESLint({ cwd: new URL('..', import.meta.url).pathname });

async function restricted(filePath: string, code: string): Promise<boolean> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).some((m) => m.ruleId === 'no-restricted-imports');
}

describe('process boundaries', () => {
  it.each([
    ['protocol/src/x.js', "import fs from 'node:fs';"],
    ['protocol/src/x.js', "import 'pino';"],
    ['renderer/x.js', "import { ipcRenderer } from 'electron';"],
    ['renderer/x.js', "import path from 'node:path';"],
    ['renderer/x.js', "import '../server/src/index.js';"],
    ['preload/x.js', "import fs from 'node:fs';"],
    ['preload/x.js', "import '../main/index.js';"],
    ['main/x.js', "import '../server/src/index.js';"],
    ['main/x.js', "import Database from 'better-sqlite3';"],
    ['server/src/x.js', "import { app } from 'electron';"],
    ['server/src/x.js', "import '../../renderer/x.js';"],
  ])('%s may not %s', async (file, code) => {
    expect(await restricted(file, code)).toBe(true);
  });

  it.each([
    ['renderer/x.js', "import { z } from 'zod';"],
    ['preload/x.js', "import { contextBridge } from 'electron';"],
    ['main/x.js', "import { app } from 'electron';"],
    ['server/src/x.js', "import fs from 'node:fs';"],
  ])('%s may %s', async (file, code) => {
    expect(await restricted(file, code)).toBe(false);
  });
});
