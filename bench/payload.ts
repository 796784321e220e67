/**
 * What the bench publishes: one targeted notification as a CI system would send it (about 130 bytes of JSON),
 * to one user. The body ends in `#<n>`, the notification's number in the run, so a device can match what it
 * receives to when it was sent.
 */
import { userName } from './servers.js';

export function notificationJson(user: string, n: number): string {
  return `{"to":{"users":["${user}"]},"title":"Build 4812 passed","body":"main@4f2a9c1: 412 tests in 38 s #${n}","priority":3,"tags":["ci"]}`;
}

/** Notification `n` goes to user `n % users`, so load spreads evenly over every device. */
export function singleBody(users: number, n: number): string {
  return notificationJson(userName(n % users), n);
}

/** `size` notifications numbered from `first`, for `POST /v1/notifications/batch`. */
export function batchBody(users: number, first: number, size: number): string {
  const items: string[] = [];
  for (let n = first; n < first + size; n++) items.push(singleBody(users, n));
  return `{"notifications":[${items.join(',')}]}`;
}

/** The number a {@link notificationJson} body ends in. */
export function numberOf(body: string): number {
  return Number(body.slice(body.lastIndexOf('#') + 1));
}
