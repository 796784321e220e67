import { describe, expect, it } from 'vitest';
import { CloseCode, ErrorCodes, ParseError, clientFrame, parseJson, parseUnknown, publishRequest, serverFrame, shouldReconnect } from '@herald/protocol';

describe('client frames', () => {
  it.each([
    [{ type: 'hello', v: 1 }],
    [{ type: 'hello', v: 1, token: 't', since: 0 }],
    [{ type: 'sync', since: 12 }],
    [{ type: 'ack', seq: 3 }],
    [{ type: 'read', seqs: [1, 2] }],
    [{ type: 'read', upTo: 9 }],
    [{ type: 'ping' }],
  ])('accepts %j', (frame) => {
    expect(parseUnknown(clientFrame, frame)).toEqual(frame);
  });

  it.each([
    [{ type: 'hello', v: 2 }, 'v'],
    [{ type: 'sync', since: -1 }, 'since'],
    [{ type: 'read', seqs: [1], upTo: 3 }, 'exactly one'],
    [{ type: 'read' }, 'exactly one'],
    [{ type: 'subscribe' }, 'type'],
    [{ type: 'ack', seq: 1.5 }, 'seq'],
  ])('rejects %j, naming the problem', (frame, words) => {
    expect(() => parseUnknown(clientFrame, frame)).toThrow(ParseError);
    expect(() => parseUnknown(clientFrame, frame)).toThrow(new RegExp(words));
  });

  it('reports bad JSON as a ParseError', () => {
    expect(() => parseJson(clientFrame, '{nope')).toThrow('not valid JSON');
  });
});

describe('server frames and codes', () => {
  it('parses a notification frame with optional fields absent', () => {
    const frame = { type: 'notification', seq: 1, id: 'a', title: 't', body: '', priority: 3, tags: [], url: null, icon: null, actions: [], createdAt: '2026-01-01T00:00:00.000Z', read: false };
    expect(parseUnknown(serverFrame, frame)).toEqual(frame);
  });

  it('tells reconnectable close codes from the ones that need the user', () => {
    expect([CloseCode.serverRestarting, CloseCode.slowConsumer, CloseCode.tooManyConnections, 1006, 1001].map(shouldReconnect)).toEqual([true, true, true, true, true]);
    expect([CloseCode.badRequest, CloseCode.unauthorized, 4999].map(shouldReconnect)).toEqual([false, false, false]);
  });

  it('maps every error code to an HTTP error status', () => {
    for (const status of Object.values(ErrorCodes)) expect(status).toBeGreaterThanOrEqual(400);
    expect(Object.keys(ErrorCodes).every((code) => /^[a-z]+(_[a-z]+)*$/.test(code))).toBe(true);
  });
});

describe('publish body', () => {
  it('requires a target and a title, and caps the fields', () => {
    expect(publishRequest.safeParse({ to: { users: ['a'] }, title: 'x' }).success).toBe(true);
    expect(publishRequest.safeParse({ to: {}, title: 'x' }).success).toBe(false);
    expect(publishRequest.safeParse({ to: { all: true }, title: 'x'.repeat(257) }).success).toBe(false);
    expect(publishRequest.safeParse({ to: { all: true }, title: 'x', actions: [{ label: 'a', url: 'javascript:alert(1)' }] }).success).toBe(false);
    // U+0000 cannot be stored by PostgreSQL: refused in every text field, whatever the transport (HTTP, ntfy, AMQP).
    for (const nul of [{ title: 'a\u0000' }, { body: '\u0000' }, { tags: ['t\u0000'] }, { key: 'k\u0000' }, { actions: [{ label: '\u0000', url: 'https://a.example' }] }]) {
      expect(publishRequest.safeParse({ to: { all: true }, title: 'x', ...nul }).success).toBe(false);
    }
    expect(publishRequest.safeParse({ to: { all: true }, title: 'x', deliverAt: '2026-11-26T10:00:00+01:00' }).success).toBe(true);
  });
});
