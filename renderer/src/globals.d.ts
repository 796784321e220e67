import type { HeraldBridge } from '@herald/protocol';

declare global {
  interface Window {
    /** The desktop app's preload bridge; absent in a browser, where the web bridge stands in. */
    readonly herald?: HeraldBridge;
  }
}
