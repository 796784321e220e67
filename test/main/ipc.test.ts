import type { IpcMainInvokeEvent } from 'electron';
import { describe, expect, it } from 'vitest';
import type { IpcInvokeChannel } from '@herald/protocol';
import { checkSender, EventQueue, ForeignSenderError, registerIpc, type IpcHandlers, type TrustedWindow } from '../../main/ipc.js';

const page = 'file:///opt/Herald/resources/app.asar/dist/renderer/index.html';
const mainFrame = { url: `${page}#item-3` };
const trusted: TrustedWindow = { page, contents: () => ({ id: 7, mainFrame }) as never };

type Handler = (event: unknown, argument: unknown) => Promise<unknown>;

/** Registers the real wrapper on a recording ipcMain and returns a way to invoke a channel as a given sender. */
function harness() {
  const calls: [string, unknown][] = [];
  const handlers = Object.fromEntries(
    (['inbox:list', 'inbox:markRead', 'inbox:markAllRead', 'inbox:open', 'account:signIn', 'account:signOut', 'settings:get', 'settings:set', 'window:ready'] satisfies IpcInvokeChannel[]).map((channel) => [
      channel,
      (argument: unknown) => {
        calls.push([channel, argument]);
        return channel === 'inbox:list' ? { items: [], head: 0, unread: 0 } : undefined;
      },
    ]),
  ) as unknown as IpcHandlers;
  const registered = new Map<string, Handler>();
  registerIpc({ handle: (channel: string, handler: Handler) => void registered.set(channel, handler) } as never, handlers, trusted);
  const invoke = (channel: string, argument: unknown, sender: { id: number }, senderFrame: unknown) => {
    const handler = registered.get(channel);
    if (!handler) throw new Error(`no handler for ${channel}`);
    return handler({ sender, senderFrame }, argument);
  };
  return { calls, registered, invoke };
}

describe('the IPC wrapper', () => {
  it('registers every channel of the contract and passes parsed arguments through', async () => {
    const { registered, invoke, calls } = harness();
    expect([...registered.keys()].sort()).toEqual(['account:signIn', 'account:signOut', 'inbox:list', 'inbox:markAllRead', 'inbox:markRead', 'inbox:open', 'settings:get', 'settings:set', 'window:ready']);
    await expect(invoke('inbox:list', { limit: 20, q: 'deploy' }, { id: 7 }, mainFrame)).resolves.toEqual({ items: [], head: 0, unread: 0 });
    expect(calls).toEqual([['inbox:list', { limit: 20, q: 'deploy' }]]);
  });

  it('rejects a call from another window, a subframe or a foreign page, before the handler runs', async () => {
    const { invoke, calls } = harness();
    await expect(invoke('inbox:list', {}, { id: 8 }, mainFrame)).rejects.toThrow(ForeignSenderError);
    await expect(invoke('inbox:list', {}, { id: 7 }, { url: page })).rejects.toThrow(/top frame/);
    await expect(invoke('inbox:list', {}, { id: 7 }, null)).rejects.toThrow(/top frame/);
    const elsewhere = { url: 'https://evil.example/index.html' };
    const hijacked: TrustedWindow = { page, contents: () => ({ id: 7, mainFrame: elsewhere }) as never };
    expect(() => checkSender({ sender: { id: 7 }, senderFrame: elsewhere } as unknown as IpcMainInvokeEvent, hijacked)).toThrow(/not the app’s own/);
    const closed: TrustedWindow = { page, contents: () => undefined };
    expect(() => checkSender({ sender: { id: 7 }, senderFrame: mainFrame } as unknown as IpcMainInvokeEvent, closed)).toThrow(ForeignSenderError);
    expect(calls).toEqual([]);
  });

  it('rejects arguments that do not match the channel schema, naming the channel', async () => {
    const { invoke, calls } = harness();
    await expect(invoke('inbox:list', { limit: 100_000 }, { id: 7 }, mainFrame)).rejects.toThrow(/invalid argument for inbox:list/);
    await expect(invoke('inbox:list', { sql: 'drop table' }, { id: 7 }, mainFrame)).rejects.toThrow(/invalid argument/);
    await expect(invoke('inbox:markRead', { seqs: [] }, { id: 7 }, mainFrame)).rejects.toThrow(/invalid argument/);
    await expect(invoke('inbox:open', 'https://evil.example', { id: 7 }, mainFrame)).rejects.toThrow(/invalid argument/);
    await expect(invoke('settings:set', { minPriority: 9 }, { id: 7 }, mainFrame)).rejects.toThrow(/invalid argument/);
    expect(calls).toEqual([]);
  });
});

describe('the event queue', () => {
  it('holds events until the window is ready, then sends them in order', () => {
    const sent: [string, unknown][] = [];
    const queue = new EventQueue(() => ({ send: (channel: string, payload: unknown) => void sent.push([channel, payload]) }));
    queue.send('event:deleted', [1]);
    queue.send('event:focusItem', 4);
    expect(sent).toEqual([]);
    queue.ready();
    queue.send('event:deleted', [2]);
    expect(sent).toEqual([
      ['event:deleted', [1]],
      ['event:focusItem', 4],
      ['event:deleted', [2]],
    ]);
    queue.reset();
    queue.send('event:deleted', [3]);
    expect(sent).toHaveLength(3);
  });

  it('keeps at most its bound while no window listens', () => {
    const queue = new EventQueue(() => undefined);
    for (let i = 0; i < EventQueue.max + 10; i++) queue.send('event:focusItem', i + 1);
    const sent: unknown[] = [];
    const ready = new EventQueue(() => ({ send: (_c: string, p: unknown) => void sent.push(p) }));
    for (let i = 0; i < EventQueue.max + 10; i++) ready.send('event:focusItem', i + 1);
    ready.ready();
    expect(sent).toHaveLength(EventQueue.max);
    expect(sent[0]).toBe(11);
  });
});
