import { describe, expect, it } from 'vitest';
import { doNotDisturbUntil, trayMenu, trayView, unreadDot, type TrayActions } from '../../main/tray.js';

const now = new Date(2026, 10, 26, 22, 15).getTime();

describe('trayView', () => {
  it.each([
    ['connected', 0, null, 'connected', ''],
    ['connecting', 0, null, 'reconnecting', ''],
    ['reconnecting', 3, null, 'reconnecting', '3'],
    ['offline', 12, null, 'offline', '12'],
    ['signed-out', 0, null, 'offline', ''],
    ['connected', 1200, null, 'connected', '999+'],
    ['connected', 2, now + 60_000, 'dnd', '2'],
    ['connected', 2, now - 60_000, 'connected', '2'],
  ] as const)('%s with %i unread, dnd until %s → icon %s, title "%s"', (connection, unread, dnd, icon, title) => {
    const view = trayView({ connection, unread, doNotDisturbUntil: dnd, now });
    expect(view.icon).toBe(icon);
    expect(view.title).toBe(title);
    expect(view.tooltip).toContain('Herald');
    if (unread > 0) expect(view.tooltip).toContain(`${unread} unread`);
  });
});

describe('doNotDisturbUntil', () => {
  it('ends an hour from now, or tomorrow at 08:00 local time', () => {
    expect(doNotDisturbUntil('1h', new Date(now))).toBe(now + 3_600_000);
    expect(new Date(doNotDisturbUntil('tomorrow', new Date(now)))).toEqual(new Date(2026, 10, 27, 8, 0));
    // Past midnight, "tomorrow" is still the next calendar day.
    expect(new Date(doNotDisturbUntil('tomorrow', new Date(2026, 10, 27, 0, 30)))).toEqual(new Date(2026, 10, 28, 8, 0));
  });
});

describe('trayMenu', () => {
  it('has the commands of the contract, each wired to its action', () => {
    const called: string[] = [];
    const actions: TrayActions = {
      openHistory: () => called.push('history'),
      doNotDisturb: (choice) => called.push(`dnd:${choice}`),
      openSettings: () => called.push('settings'),
      signOut: () => called.push('sign-out'),
      quit: () => called.push('quit'),
    };
    const menu = trayMenu(trayView({ connection: 'connected', unread: 0, doNotDisturbUntil: now + 1, now }), actions);
    const click = (item: (typeof menu)[number] | undefined) => (item?.click as (() => void) | undefined)?.();
    expect(menu.map((item) => item.label ?? item.type)).toEqual(['Open history', 'Do not disturb', 'Settings…', 'separator', 'Sign out', 'Quit Herald']);
    const dnd = menu[1]?.submenu as typeof menu;
    expect(dnd.map((item) => [item.label, item.enabled ?? true])).toEqual([
      ['For 1 hour', true],
      ['Until tomorrow', true],
      ['Off', true],
    ]);
    for (const item of [menu[0], ...dnd, menu[2], menu[4], menu[5]]) click(item);
    expect(called).toEqual(['history', 'dnd:1h', 'dnd:tomorrow', 'dnd:off', 'settings', 'sign-out', 'quit']);
    const notInDnd = trayMenu(trayView({ connection: 'connected', unread: 0, doNotDisturbUntil: null, now }), actions);
    expect((notInDnd[1]?.submenu as typeof menu)[2]?.enabled).toBe(false);
  });
});

describe('unreadDot', () => {
  it('is an opaque red disc on transparency, in BGRA', () => {
    const size = 16;
    const dot = unreadDot(size);
    const pixel = (x: number, y: number) => [...dot.subarray((y * size + x) * 4, (y * size + x) * 4 + 4)];
    expect(dot).toHaveLength(size * size * 4);
    expect(pixel(8, 8)).toEqual([0x30, 0x30, 0xdc, 255]);
    expect(pixel(0, 0)[3]).toBe(0);
    expect(pixel(15, 15)[3]).toBe(0);
    expect(pixel(0, 8)[3]).toBeGreaterThan(100);
  });
});
