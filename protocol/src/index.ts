export * from './codes.js';
export * from './limits.js';
export * from './notification.js';
export * from './frames.js';
export * from './parse.js';
export * from './bridge.js';
export * from './backoff.js';
export * from './stream-client.js';
