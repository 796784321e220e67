/**
 * The one way main answers a window: every handler goes through `registerIpc`, which checks that the call
 * comes from the history window's own top frame on its own page, then parses the argument with the
 * channel's zod schema. Events to the window wait until it has said `window:ready`.
 */
import type { IpcMain, IpcMainInvokeEvent, WebContents } from 'electron';
import { ipcInvoke, ParseError, parseUnknown, type IpcArgument, type IpcEventChannel, type IpcEvents, type IpcInvokeChannel, type IpcResults } from '@herald/protocol';

export type IpcHandlers = { [C in IpcInvokeChannel]: (argument: IpcArgument<C>) => Promise<IpcResults[C]> | IpcResults[C] };

/** Who may call: the window's contents, and the page its top frame must be showing. */
export interface TrustedWindow {
  /** The current history window's contents, or undefined when it is closed. */
  contents(): Pick<WebContents, 'id' | 'mainFrame'> | undefined;
  /** `file:` URL of the page (query and hash are ignored). */
  page: string;
}

export class ForeignSenderError extends Error {
  readonly code = 'foreign_sender';
}

function withoutSearchAndHash(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.origin + parsed.pathname;
  } catch {
    return undefined;
  }
}

/** Throws unless the event comes from the trusted window's top frame, showing the app's own page. */
export function checkSender(event: Pick<IpcMainInvokeEvent, 'sender' | 'senderFrame'>, trusted: TrustedWindow): void {
  const contents = trusted.contents();
  const frame = event.senderFrame;
  if (contents === undefined || event.sender.id !== contents.id) throw new ForeignSenderError('IPC from a window that is not the history window');
  if (frame === null || frame !== contents.mainFrame) throw new ForeignSenderError('IPC from a frame that is not the window’s top frame');
  const expected = withoutSearchAndHash(trusted.page);
  if (expected === undefined || withoutSearchAndHash(frame.url) !== expected) throw new ForeignSenderError('IPC from a page that is not the app’s own');
}

/** Registers every handler behind the sender check and its argument schema. */
export function registerIpc(ipcMain: Pick<IpcMain, 'handle'>, handlers: IpcHandlers, trusted: TrustedWindow): void {
  for (const channel of Object.keys(ipcInvoke) as IpcInvokeChannel[]) {
    ipcMain.handle(channel, async (event, raw: unknown) => {
      checkSender(event, trusted);
      const handler = handlers[channel] as (argument: unknown) => unknown;
      try {
        return await handler(parseUnknown(ipcInvoke[channel], raw));
      } catch (error) {
        // Errors cross to the page as plain messages; a parse error names the bad field, nothing else.
        if (error instanceof ParseError) throw new Error(`invalid argument for ${channel}: ${error.message}`);
        throw error;
      }
    });
  }
}

/** Sends events to the window, holding them until the page has said `window:ready`. */
export class EventQueue {
  #ready = false;
  #pending: [IpcEventChannel, unknown][] = [];
  /** Most events a closed or loading window can fall behind by; older ones are dropped (the inbox reloads). */
  static readonly max = 1_000;

  constructor(private readonly target: () => Pick<WebContents, 'send'> | undefined) {}

  send<C extends IpcEventChannel>(channel: C, payload: IpcEvents[C]): void {
    const contents = this.target();
    if (this.#ready && contents !== undefined) {
      contents.send(channel, payload);
      return;
    }
    this.#pending.push([channel, payload]);
    if (this.#pending.length > EventQueue.max) this.#pending.shift();
  }

  /** The page is listening: flush what waited. */
  ready(): void {
    this.#ready = true;
    const contents = this.target();
    if (contents === undefined) return;
    for (const [channel, payload] of this.#pending.splice(0)) contents.send(channel, payload);
  }

  /** The window closed or reloads: hold events again until it is ready. */
  reset(): void {
    this.#ready = false;
  }
}
