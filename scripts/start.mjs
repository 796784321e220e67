// `npm start`: the server on the embedded default, a local demo account the first time, and the desktop app
// signed in to it. Without the Electron binary, the server and the web inbox keep running on their own.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(`Usage: npm start [-- server options]

Starts herald-server (see npm exec herald-server -- start --help for its options, e.g. --port, --data),
creates the user "demo" with a random password on the first run (kept in <data>/demo.password, mode 0600),
then launches the desktop app signed in as demo. Without the Electron binary, the server and the web inbox
keep running and the web inbox's address is printed. Ctrl-C stops everything.`);
  process.exit(0);
}

const root = new URL('..', import.meta.url).pathname;
const demoUser = 'demo';
const say = (line) => console.log(`herald: ${line}`);

const server = spawn(process.execPath, [join(root, 'server/dist/cli.js'), 'start', ...process.argv.slice(2)], { stdio: ['ignore', 'inherit', 'pipe'] });
const stop = () => server.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
server.on('exit', (code) => process.exit(code ?? 0));

const { url, tokenFile } = await new Promise((resolve) => {
  let tokenPath;
  // The server says where it listens and where its admin token is on stderr; its JSON log goes to stdout.
  createInterface({ input: server.stderr }).on('line', (line) => {
    console.error(line);
    tokenPath ??= /admin token (?:written to|in) (.+?)(?: \(|$)/.exec(line)?.[1];
    const listening = /listening on (https?:\/\/\S+)/.exec(line)?.[1];
    if (listening !== undefined) setImmediate(() => resolve({ url: listening, tokenFile: tokenPath }));
  });
});

const adminToken = process.env.HERALD_ADMIN_TOKEN ?? (tokenFile === undefined ? undefined : readFileSync(tokenFile, 'utf8').trim());
if (adminToken === undefined) {
  say('no admin token found, so no demo account was made');
} else {
  await demo(url, adminToken, join(tokenFile === undefined ? join(root, 'herald-data') : dirname(tokenFile), 'demo.password')).catch((error) => {
    say(`the demo account could not be set up: ${error.message}`);
  });
}

async function admin(method, path, body) {
  const response = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function demo(url, adminToken, passwordFile) {
  if (!existsSync(passwordFile)) {
    const password = randomBytes(12).toString('base64url');
    const created = await admin('POST', '/v1/users', { name: demoUser, password });
    if (created.status !== 201) throw new Error(`creating the user "${demoUser}" answered ${created.status}`);
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    say(`created the user "${demoUser}"; its password is in ${passwordFile}`);
  }
  const electron = electronBinary();
  if (electron === undefined) {
    say('the Electron binary is not installed (npm skipped its download), so the desktop app cannot start here.');
    say(`the server and the web inbox keep running: open ${url}/ and sign in as "${demoUser}" with the password in ${passwordFile}`);
    return;
  }
  const device = await admin('POST', '/v1/tokens', { kind: 'device', user: demoUser, label: 'desktop app (npm start)' });
  if (device.status !== 201) throw new Error(`creating a device token answered ${device.status}`);
  say(`launching the desktop app, signed in as "${demoUser}"; the web inbox is at ${url}/`);
  // The token travels in the child's environment only; the app moves it to the OS keychain at once.
  const app = spawn(electron, [root], { stdio: 'inherit', env: { ...process.env, HERALD_SERVER_URL: url, HERALD_DEVICE_TOKEN: device.body.token } });
  app.on('exit', () => say('the desktop app quit; the server keeps running (Ctrl-C stops it)'));
}

/** The Electron executable, or undefined when its download was skipped or failed. */
function electronBinary() {
  try {
    const path = createRequire(import.meta.url)('electron');
    return typeof path === 'string' && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}
